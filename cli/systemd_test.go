package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit: the unit template dist/systemd/qmgr@.service runs one
// member per instance, as Type=notify (qmgr start sends READY=1:
// TestStartNotifiesSystemd), restarts it on failure, and sandboxes it
// without taking from it what a group needs: the shared /dev/shm, the
// data directory, the host's pid namespace and the other users' processes.
// When systemd-analyze is installed, it verifies the unit (with ExecStart
// pointing at this test binary) and must print no warning.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "dist", "systemd", "qmgr@.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	set := map[string][]string{}
	for _, l := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			set[k] = append(set[k], v)
		}
	}
	for k, want := range map[string]string{"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "KillMode": "mixed",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
		"ReadWritePaths": "/dev/shm", "StateDirectory": "qmgr", "PrivateDevices": "no", "RemoveIPC": "no"} {
		if got := set[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%v, want %s", k, got, want)
		}
	}
	for _, k := range []string{"PrivatePIDs", "ProtectProc", "PrivateIPC", "DynamicUser"} {
		if v, ok := set[k]; ok {
			t.Errorf("%s=%v is set: the group's processes must see one another and share /dev/shm", k, v)
		}
	}
	if got := set["ExecStart"]; len(got) != 1 || !strings.HasPrefix(got[0], "/usr/local/bin/qmgr start --name %i ") {
		t.Errorf("ExecStart=%v, want qmgr start --name %%i ...", got)
	}
	if got := set["EnvironmentFile"]; len(got) != 2 || got[0] != "/etc/qmgr/qmgr.env" || got[1] != "-/etc/qmgr/%i.env" {
		t.Errorf("EnvironmentFile=%v", got)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified by systemd")
		return
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inst := filepath.Join(dir, "qmgr@QM1.service")
	if err := os.WriteFile(inst, []byte(strings.ReplaceAll(unit, "/usr/local/bin/qmgr", exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", inst).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
