package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRegistry answers every request with the path and Host it received, and a Link header
// such as a registry sends for a paged tag list.
func fakeRegistry(t *testing.T) *url.URL {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</v2/"+canonicalHost(r.Host)+"/pause/tags/list?last=3.6>; rel=\"next\"")
		io.WriteString(w, r.Method+" "+r.Host+" "+r.URL.Path)
	}))
	t.Cleanup(server.Close)
	target, err := url.Parse(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

func testHandler(t *testing.T) http.Handler {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "core:", "stable:", "v1.37", "deb", "Release")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("Origin: test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return newHandler(fakeRegistry(t), []string{"registry.k8s.io", "ghcr.io"},
		map[string]string{"pkgs.k8s.io": dir})
}

func get(t *testing.T, h http.Handler, method, rawURL string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, rawURL, nil))
	return rec.Code, rec.Header(), rec.Body.String()
}

func TestRouting(t *testing.T) {
	h := testHandler(t)
	cases := []struct {
		name, method, url string
		status            int
		body              string // a part of the body
	}{
		{"apt file", "GET", "https://pkgs.k8s.io/core:/stable:/v1.37/deb/Release", 200, "Origin: test"},
		{"host with port and capitals", "GET", "https://PKGS.k8s.io:443/core:/stable:/v1.37/deb/Release", 200, "Origin: test"},
		{"missing file", "GET", "https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release", 404, ""},
		{"registry version check", "GET", "https://registry.k8s.io/v2/", 200, "GET registry.k8s.io /v2/"},
		{"registry version check, no slash", "GET", "https://registry.k8s.io/v2", 200, "GET registry.k8s.io /v2/"},
		{"manifest under the host's prefix", "HEAD", "https://registry.k8s.io/v2/pause/manifests/3.10.2", 200, ""},
		{"nested name", "GET", "https://registry.k8s.io/v2/coredns/coredns/manifests/v1.14.6", 200,
			"GET registry.k8s.io /v2/registry.k8s.io/coredns/coredns/manifests/v1.14.6"},
		{"second registry host", "GET", "https://ghcr.io/v2/flannel-io/flannel/blobs/sha256:00", 200,
			"GET ghcr.io /v2/ghcr.io/flannel-io/flannel/blobs/sha256:00"},
		{"registry host outside /v2", "GET", "https://registry.k8s.io/pause", 404, "serves only /v2/"},
		{"file host has no registry", "GET", "https://pkgs.k8s.io/v2/", 404, ""},
		{"unknown host", "GET", "https://download.docker.com/linux/debian/gpg", 404, "nothing stands in for host download.docker.com"},
		{"push refused", "POST", "https://registry.k8s.io/v2/pause/blobs/uploads/", 405, "read-only"},
		{"file write refused", "PUT", "https://pkgs.k8s.io/x", 405, "read-only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := get(t, h, c.method, c.url)
			if status != c.status || !strings.Contains(body, c.body) {
				t.Fatalf("%s %s: got %d %q, want %d containing %q", c.method, c.url, status, body, c.status, c.body)
			}
		})
	}
}

func TestRegistryLinksLoseThePrefix(t *testing.T) {
	_, header, _ := get(t, testHandler(t), "GET", "https://registry.k8s.io/v2/pause/tags/list?n=1")
	if got, want := header.Get("Link"), `</v2/pause/tags/list?last=3.6>; rel="next"`; got != want {
		t.Fatalf("Link: got %q, want %q", got, want)
	}
}

func TestRegistryPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v2":                        "/v2/",
		"/v2/":                       "/v2/",
		"/v2/pause/manifests/3.6":    "/v2/registry.k8s.io/pause/manifests/3.6",
		"/v2/a/b/c/tags/list":        "/v2/registry.k8s.io/a/b/c/tags/list",
		"/v2/etcd/blobs/sha256:abcd": "/v2/registry.k8s.io/etcd/blobs/sha256:abcd",
	} {
		if got := registryPath("registry.k8s.io", in); got != want {
			t.Errorf("registryPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFilesFlag(t *testing.T) {
	files := hostDirs{}
	if err := files.Set("GitHub.com.=/srv/gh"); err != nil {
		t.Fatal(err)
	}
	if files["github.com"] != "/srv/gh" {
		t.Fatalf("got %v", files)
	}
	for _, bad := range []string{"github.com=/other", "nodir", "=/srv", "host="} {
		if err := files.Set(bad); err == nil {
			t.Errorf("Set(%q): want an error", bad)
		}
	}
}
