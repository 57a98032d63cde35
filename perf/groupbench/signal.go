package main

import (
	"os"
	"os/signal"
)

func notify(c chan os.Signal, sig ...os.Signal) { signal.Notify(c, sig...) }
