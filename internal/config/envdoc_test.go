package config_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*[A-Z0-9]$`)

// codeEnvVars returns the variables the code reads: the string-literal
// first arguments of the reader's methods in config.go, and of
// os.Getenv/os.LookupEnv anywhere in non-test code (test helpers under
// internal/testenv and bench/ read the harness's own variables and are skipped).
func codeEnvVars(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || rel == filepath.Join("internal", "testenv") || rel == "bench" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		isConfig := rel == filepath.Join("internal", "config", "config.go")
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			reads := (x.Name == "os" && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv")) ||
				(isConfig && x.Name == "r")
			if !reads {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if name, err := strconv.Unquote(lit.Value); err == nil && envName.MatchString(name) {
				out[name] = true
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// docEnvVars returns the variables named in the first column of the table
// of docs/configuration.md.
func docEnvVars(t *testing.T, doc string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "# Configuration reference\n")
	if !ok {
		t.Fatal("docs/configuration.md has no # Configuration reference title")
	}
	out := map[string]bool{}
	tick := regexp.MustCompile("`([^`]+)`")
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range tick.FindAllStringSubmatch(cells[1], -1) {
			if envName.MatchString(m[1]) {
				out[m[1]] = true
			}
		}
	}
	return out
}

func TestEnvVarsDocumented(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	code := codeEnvVars(t, root)
	doc := docEnvVars(t, filepath.Join(root, "docs", "configuration.md"))
	if len(code) < 50 {
		t.Fatalf("found only %d variables in the code: is the parser still matching config.go?", len(code))
	}
	var missing, stale []string
	for v := range code {
		if !doc[v] {
			missing = append(missing, v)
		}
	}
	for v := range doc {
		if !code[v] {
			stale = append(stale, v)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("read by the code but not in the docs/configuration.md: %s", strings.Join(missing, ", "))
	}
	if len(stale) > 0 {
		t.Errorf("in the docs/configuration.md but not read by the code: %s", strings.Join(stale, ", "))
	}
}
