package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/qsg"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
)

// profileEnv names the file the serving process writes its CPU profile
// to, between a SIGUSR1 (start) and a SIGUSR2 (stop).
const profileEnv = "AMQPBENCH_CPUPROFILE"

// app is a child of the benchmark: "serve MEMBER <group flags>" serves
// AMQP on a loopback port through member MEMBER (qsg.New and amqp.Serve,
// as a member's AMQP listener does), prints "listening ADDR" and serves
// until it is killed or SIGTERMed.
func app(args []string) error {
	if len(args) < 1 || args[0] != "serve" {
		return fmt.Errorf("unknown application %q", args)
	}
	if len(args) < 2 {
		return errors.New("serve: the member is missing")
	}
	member := args[1]
	cfg, err := benchgroup.ParseArgs(args[2:])
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := qsg.New(qsg.Config{Connect: mq.ConnectOptions{Group: cfg.Name, DataDir: cfg.DataDir, CFDir: cfg.CFDir, QMgr: member}, Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go profileOnSignal(os.Getenv(profileEnv))
	fmt.Println("listening", ln.Addr())
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		go amqp.Serve(nc, amqp.Config{}, b, log)
	}
}

// profileOnSignal writes a CPU profile to path from SIGUSR1 to SIGUSR2 (a
// later pair writes it anew), and stops it and exits at SIGTERM.
func profileOnSignal(path string) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	var f *os.File
	stop := func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
			f = nil
		}
	}
	for s := range sigs {
		switch {
		case s == syscall.SIGUSR1 && path != "" && f == nil:
			var err error
			if f, err = os.Create(path); err != nil {
				fmt.Fprintln(os.Stderr, "amqpbench serve: profile:", err)
				f = nil
				continue
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "amqpbench serve: profile:", err)
				f.Close()
				f = nil
			}
		case s == syscall.SIGUSR2:
			stop()
		case s == syscall.SIGTERM:
			stop()
			os.Exit(0)
		}
	}
}
