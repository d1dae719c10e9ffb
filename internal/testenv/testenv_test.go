package testenv

import (
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMySQLEnv_DSN(t *testing.T) {
	env := MySQLEnv{Host: "127.0.0.1", Port: 13306, User: "u", Password: "p@ss", Database: "db"}
	got := env.DSN()
	want := "u:p@ss@tcp(127.0.0.1:13306)/db?parseTime=true"
	if got != want {
		t.Fatalf("DSN() = %q, want %q", got, want)
	}
}

func TestModuleRoot_FindsGoMod(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("ModuleRoot() = %s without go.mod", root)
	}
}

func TestScenarioDir_EnvOverride(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SIPP_SCENARIOS_DIR", dir)
	if got := ScenarioDir(t); got != dir {
		t.Fatalf("ScenarioDir() = %s, want %s", got, dir)
	}
}

func TestScenarioDir_HoldsScenarios(t *testing.T) {
	dir := ScenarioDir(t)
	if _, err := os.Stat(filepath.Join(dir, "uac-register-auth-success.xml")); err != nil {
		t.Fatal(err)
	}
}

func TestRedis_Answers(t *testing.T) {
	addr := Redis(t)
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "+PONG\r\n" {
		t.Fatalf("PING answered %q", got)
	}
}

func TestMySQL_FixturesLoaded(t *testing.T) {
	env := MySQL(t)
	db, err := sql.Open("mysql", env.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var realm string
	err = db.QueryRow("SELECT sip_realm FROM accounts WHERE account_sid = ?",
		"ed649e33-e771-403a-8c99-1780eabbc803").Scan(&realm)
	if err != nil {
		t.Fatal(err)
	}
	if realm != "jambonz.org" {
		t.Fatalf("sip_realm = %q", realm)
	}
}

// The probe file is given by a name relative to DBDir, as tests name the shared fixtures.
func TestLoadSQL_RunsAllStatementsRelativeToDBDir(t *testing.T) {
	env := MySQL(t)
	env.DBDir = t.TempDir()
	text := "DROP TABLE IF EXISTS testenv_probe;\n" +
		"CREATE TABLE testenv_probe (id INT PRIMARY KEY);\n" +
		"INSERT INTO testenv_probe VALUES (1);\nINSERT INTO testenv_probe VALUES (2);\n"
	if err := os.WriteFile(filepath.Join(env.DBDir, "probe.sql"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	LoadSQL(t, env, "probe.sql")
	db := RootDB(t, env)
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS testenv_probe") })
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM testenv_probe").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("rows = %d, want 2", n)
	}
}

// A failing statement after the first must not be swallowed by the multi-statement query.
func TestLoadSQL_ReportsLaterError(t *testing.T) {
	env := MySQL(t)
	file := filepath.Join(t.TempDir(), "bad.sql")
	if err := os.WriteFile(file, []byte("SELECT 1;\nINSERT INTO no_such_table VALUES (1);\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := loadSQL(env, file)
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("loadSQL error = %v, want one naming no_such_table", err)
	}
}

func TestSipp_Found(t *testing.T) {
	if p := Sipp(t); !filepath.IsAbs(p) {
		t.Fatalf("Sipp() = %q, want an absolute path", p)
	}
}

// recordingTB notes Skip and Fatal instead of stopping the goroutine.
type recordingTB struct {
	testing.TB
	skipped, failed bool
}

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Skip(...any)           { r.skipped = true }
func (r *recordingTB) Fatal(...any)          { r.failed = true }
func (r *recordingTB) Fatalf(string, ...any) { r.failed = true }

func TestUnavailable_SkipsLocallyFailsUnderCI(t *testing.T) {
	t.Setenv("TEST_REDIS_ADDR", "")
	for _, tc := range []struct {
		ci                string
		wantSkip, wantErr bool
	}{
		{ci: "", wantSkip: true},
		{ci: "true", wantErr: true},
	} {
		t.Setenv("CI", tc.ci)
		r := &recordingTB{TB: t}
		Redis(r)
		if r.skipped != tc.wantSkip || r.failed != tc.wantErr {
			t.Errorf("CI=%q: skipped=%v failed=%v, want %v %v", tc.ci, r.skipped, r.failed, tc.wantSkip, tc.wantErr)
		}
	}
}
