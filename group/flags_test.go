package group

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

// TestConfigArgsRoundTrip: Args writes every field RegisterFlags reads.
func TestConfigArgsRoundTrip(t *testing.T) {
	for _, c := range []Config{
		{Name: "G1", DataDir: "/d", CFDir: "/cf", AppSize: 48 << 20, AppElementSize: 1024},
		{Name: "G2"},
		{},
	} {
		var got Config
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		got.RegisterFlags(fs)
		if err := fs.Parse(c.Args()); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("Args %q read back as %+v, want %+v", c.Args(), got, c)
		}
	}
}

// TestConfigFlagsDefaults: the values a Config holds when its flags are
// registered are their defaults; --app-size is in MiB and bounded.
func TestConfigFlagsDefaults(t *testing.T) {
	c := Config{Name: "QSG1", AppSize: 256 << 20, AppElementSize: 256}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--data", "/d"}); err != nil {
		t.Fatal(err)
	}
	if want := (Config{Name: "QSG1", DataDir: "/d", AppSize: 256 << 20, AppElementSize: 256}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if d := fs.Lookup("app-size").DefValue; d != "256" {
		t.Fatalf("--app-size default %q, want 256", d)
	}
	if err := fs.Parse([]string{"--app-size", "1048577"}); err == nil {
		t.Fatal("--app-size over 1 TiB accepted")
	}
}

// TestArgsRoundAppSizeUp: a size that is not whole MiB is passed rounded
// up, never down (512 KiB rounded down would be 0: the 256 MiB default).
func TestArgsRoundAppSizeUp(t *testing.T) {
	for size, want := range map[uint64]string{512 << 10: "1", 1 << 20: "1", 1<<20 + 1: "2", 48 << 20: "48"} {
		a := Config{AppSize: size}.Args()
		if len(a) != 2 || a[0] != "--app-size" || a[1] != want {
			t.Errorf("AppSize %d: %q, want --app-size %s", size, a, want)
		}
	}
}
