// Package testenv gives tests the external services that scripts/test.sh starts (Redis,
// MariaDB loaded with testdata/jambonz-db, sipp and the scenarios in testdata/sipp, a
// drachtio-server binary when one is available).
//
// A test asks for what it needs; when the service is not configured the test is skipped on a
// developer's machine and fails under CI (CI=true), so a broken CI set-up cannot pass silently.
// Run the tests through scripts/test.sh, or start the services once with
//
//	eval "$(scripts/test.sh --services-only)"
//
// and use plain go test afterwards.
package testenv

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/go-sql-driver/mysql"
)

const hint = "run the tests with scripts/test.sh, or eval \"$(scripts/test.sh --services-only)\" first"

// unavailable skips the test, or fails it under CI where every service must be present.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + ": " + hint
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
}

// Redis returns the address (host:port) of the test Redis server.
func Redis(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TEST_REDIS_ADDR")
	if addr == "" {
		unavailable(t, "TEST_REDIS_ADDR is not set")
	}
	return addr
}

// MySQLEnv describes the test MariaDB: the jambones_test user and database, root access for
// fixtures, and the directory holding the jambonz SQL files.
type MySQLEnv struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// RootDSN is a go-sql-driver/mysql DSN for root (over TCP with a password), without a database.
	RootDSN string
	// DBDir is the absolute path of the jambonz SQL fixtures (testdata/jambonz-db).
	DBDir string
}

// DSN returns the go-sql-driver/mysql DSN of the test user on the test database.
func (e MySQLEnv) DSN() string {
	c := mysql.NewConfig()
	c.User = e.User
	c.Passwd = e.Password
	c.Net = "tcp"
	c.Addr = fmt.Sprintf("%s:%d", e.Host, e.Port)
	c.DBName = e.Database
	c.ParseTime = true
	return c.FormatDSN()
}

// MySQL returns the test MariaDB settings from the TEST_MYSQL_* variables.
func MySQL(t testing.TB) MySQLEnv {
	t.Helper()
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			unavailable(t, "%s is not set", name)
		}
		return v
	}
	env := MySQLEnv{
		Host:     get("TEST_MYSQL_HOST"),
		User:     get("TEST_MYSQL_USER"),
		Password: get("TEST_MYSQL_PASSWORD"),
		Database: get("TEST_MYSQL_DATABASE"),
		RootDSN:  get("TEST_MYSQL_ROOT_DSN"),
		DBDir:    get("TEST_JAMBONZ_DB_DIR"),
	}
	port, err := strconv.Atoi(get("TEST_MYSQL_PORT"))
	if err != nil {
		t.Fatalf("TEST_MYSQL_PORT: %v", err)
	}
	env.Port = port
	return env
}

// Sipp returns the path of the sipp binary.
func Sipp(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("sipp")
	if err != nil {
		unavailable(t, "sipp not found (Debian package sip-tester)")
	}
	return path
}

// ScenarioDir returns the absolute path of the sipp scenarios and user lists the tests run:
// SIPP_SCENARIOS_DIR, or testdata/sipp of the module (testdata/sipp/README.md lists them).
func ScenarioDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SIPP_SCENARIOS_DIR")
	if dir == "" {
		root, err := ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "testdata", "sipp")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		unavailable(t, "sipp scenario directory %s not found (set SIPP_SCENARIOS_DIR)", abs)
	}
	return abs
}

// ModuleRoot returns the directory holding go.mod, upward from the working directory (go test
// runs each test in its package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// RootDB opens the test database as root; it is closed when the test ends. Tests use it to
// prepare fixtures the test user may not write (and to rewrite addresses in loaded fixtures).
func RootDB(t testing.TB, env MySQLEnv) *sql.DB {
	t.Helper()
	db, err := openRoot(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openRoot(env MySQLEnv) (*sql.DB, error) {
	c, err := mysql.ParseDSN(env.RootDSN)
	if err != nil {
		return nil, fmt.Errorf("TEST_MYSQL_ROOT_DSN: %w", err)
	}
	c.DBName = env.Database
	// SQL files hold many statements; sending a file as one query keeps its session settings
	// (SET FOREIGN_KEY_CHECKS=0 ...) in force for all of it.
	c.MultiStatements = true
	c.ParseTime = true
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("root connector: %w", err)
	}
	return sql.OpenDB(connector), nil
}

// LoadSQL runs a SQL file (many statements) as root in the test database. A relative file name
// is taken in env.DBDir, e.g. LoadSQL(t, env, "test-data.sql").
func LoadSQL(t testing.TB, env MySQLEnv, file string) {
	t.Helper()
	if err := loadSQL(env, file); err != nil {
		t.Fatal(err)
	}
}

func loadSQL(env MySQLEnv, file string) error {
	if !filepath.IsAbs(file) {
		file = filepath.Join(env.DBDir, file)
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	db, err := openRoot(env)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(string(text)); err != nil {
		return fmt.Errorf("loading %s: %w", file, err)
	}
	return nil
}

// DrachtioBin returns the path of a real drachtio-server binary, from TEST_DRACHTIO_BIN, which
// scripts/test.sh sets when it finds one (the binary is not part of the repository).
func DrachtioBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("TEST_DRACHTIO_BIN")
	if bin == "" {
		unavailable(t, "no drachtio-server binary: TEST_DRACHTIO_BIN is not set (scripts/test.sh sets it "+
			"when ../shared/tools/drachtio/drachtio exists)")
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		unavailable(t, "TEST_DRACHTIO_BIN=%s is not an executable file", bin)
	}
	return bin
}
