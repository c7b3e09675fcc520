// Command internet-standin is test harness only, not part of the product: one TLS server that
// stands in for the internet sites the product's node scripts reach, for the end-to-end test's
// machine containers, which cannot reach those sites from the test machine. The machines map
// each site's name to this server (`docker run --add-host NAME:IP`) and trust the test CA that
// signed its certificate, as machines behind a corporate TLS proxy trust that proxy's CA.
//
// Requests are told apart by their Host:
//
//   - a registry host (-registry-host, repeatable, like registry.k8s.io or ghcr.io): the
//     read side of the registry API, /v2/..., is proxied to a plain-HTTP registry process
//     (-registry HOST:PORT). Each host's repositories live in that registry under the host's
//     own name, so registry.k8s.io/pause is the registry's registry.k8s.io/pause and
//     ghcr.io/flannel-io/flannel its ghcr.io/flannel-io/flannel. Not hidden: a tag list's body
//     names the repository as stored (with the host); the catalog is not served.
//   - a file host (-files HOST=DIR, repeatable, like pkgs.k8s.io or github.com): static files
//     from DIR, a request's path being the file's path under DIR.
//   - any other host: 404 naming the host, so a machine reaching for a site nobody stood in
//     for fails with a message that says which.
//
// Only GET and HEAD are served: the machines read; the harness fills the registry directly.
//
// Usage:
//
//	internet-standin -listen 172.29.200.1:443 -cert tls.crt -key tls.key \
//	  -registry 127.0.0.1:5000 -registry-host registry.k8s.io -registry-host ghcr.io \
//	  -files pkgs.k8s.io=/srv/apt -files github.com=/srv/github
//
// The listen address may not exist yet when it starts (Linux: IP_FREEBIND), so the stand-in can
// start before the Docker network whose gateway it is. It logs "serving on ADDR" once it
// listens, then each request on stderr as: client method host path status.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// hostDirs is the repeatable -files HOST=DIR flag.
type hostDirs map[string]string

func (h hostDirs) String() string {
	pairs := make([]string, 0, len(h))
	for host, dir := range h {
		pairs = append(pairs, host+"="+dir)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func (h hostDirs) Set(value string) error {
	host, dir, ok := strings.Cut(value, "=")
	host = canonicalHost(host)
	if !ok || host == "" || dir == "" {
		return fmt.Errorf("%q: expected HOST=DIR", value)
	}
	if _, seen := h[host]; seen {
		return fmt.Errorf("%q: host %s given twice", value, host)
	}
	h[host] = dir
	return nil
}

// hostList is the repeatable -registry-host HOST flag.
type hostList []string

func (l *hostList) String() string { return strings.Join(*l, ",") }

func (l *hostList) Set(value string) error {
	host := canonicalHost(value)
	if host == "" {
		return errors.New("empty host name")
	}
	*l = append(*l, host)
	return nil
}

// canonicalHost is a request's or a flag's host name without port, trailing dot or capitals.
func canonicalHost(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// registryPath maps a registry host's API path to the registry's: /v2/ stays (the version
// check), /v2/NAME/... becomes /v2/HOST/NAME/....
func registryPath(host, path string) string {
	rest := strings.TrimPrefix(path, "/v2")
	rest = strings.TrimPrefix(rest, "/")
	if rest == "" {
		return "/v2/"
	}
	return "/v2/" + host + "/" + rest
}

// newHandler routes by host name: registryHosts to the registry at registry (a URL such as
// http://127.0.0.1:5000), files' hosts to their directories.
func newHandler(registry *url.URL, registryHosts []string, files map[string]string) http.Handler {
	sites := map[string]http.Handler{}
	for host, dir := range files {
		sites[host] = http.FileServer(http.Dir(dir))
	}
	if len(registryHosts) > 0 {
		proxy := registryProxy(registry)
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
				http.Error(w, "internet stand-in: a registry host serves only /v2/", http.StatusNotFound)
				return
			}
			proxy.ServeHTTP(w, r)
		})
		for _, host := range registryHosts {
			sites[host] = api
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := canonicalHost(r.Host)
		site, ok := sites[host]
		switch {
		case !ok:
			http.Error(w, "internet stand-in: nothing stands in for host "+host, http.StatusNotFound)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "internet stand-in: read-only, "+r.Method+" is not served", http.StatusMethodNotAllowed)
		default:
			site.ServeHTTP(w, r)
		}
	})
}

// registryProxy forwards to the registry with the repository name prefixed by the host name,
// keeping the public Host (the registry builds absolute URLs from it) and taking the prefix
// out of the URLs the registry sends back (Location, and Link for paged tag lists).
func registryProxy(registry *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			host := canonicalHost(pr.In.Host)
			pr.SetURL(registry)
			pr.SetXForwarded()
			pr.Out.URL.Path = registryPath(host, pr.In.URL.Path)
			pr.Out.URL.RawPath = ""
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			prefix := "/v2/" + canonicalHost(resp.Request.Host) + "/"
			for _, name := range []string{"Location", "Link"} {
				if value := resp.Header.Get(name); value != "" {
					resp.Header.Set(name, strings.ReplaceAll(value, prefix, "/v2/"))
				}
			}
			return nil
		},
	}
}

// statusRecorder remembers the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		log.Printf("%s %s %s %s %d", r.RemoteAddr, r.Method, canonicalHost(r.Host), r.URL.Path, rec.status)
	})
}

func main() {
	files := hostDirs{}
	var registryHosts hostList
	listenAddr := flag.String("listen", ":443", "IPv4 address to serve TLS on, IP:PORT (it may appear later)")
	certFile := flag.String("cert", "", "PEM certificate naming every host (required)")
	keyFile := flag.String("key", "", "PEM private key of -cert (required)")
	registryAddr := flag.String("registry", "", "HOST:PORT of the plain-HTTP registry behind the registry hosts")
	flag.Var(&registryHosts, "registry-host", "a host name served from the registry (repeatable)")
	flag.Var(files, "files", "HOST=DIR: a host name served from DIR's files (repeatable)")
	flag.Parse()
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)
	if err := serve(*listenAddr, *certFile, *keyFile, *registryAddr, registryHosts, files); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func serve(listenAddr, certFile, keyFile, registryAddr string, registryHosts []string, files map[string]string) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if certFile == "" || keyFile == "" {
		return errors.New("-cert and -key are required")
	}
	if len(registryHosts) == 0 && len(files) == 0 {
		return errors.New("nothing to serve: give -registry-host or -files")
	}
	var registry *url.URL
	if len(registryHosts) > 0 {
		if _, _, err := net.SplitHostPort(registryAddr); err != nil {
			return fmt.Errorf("-registry %q: expected HOST:PORT", registryAddr)
		}
		registry = &url.URL{Scheme: "http", Host: registryAddr}
	}
	for _, host := range registryHosts {
		if _, both := files[host]; both {
			return fmt.Errorf("host %s is given as a registry host and as a file host", host)
		}
	}
	for host, dir := range files {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return fmt.Errorf("-files %s=%s: not a directory", host, dir)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("loading -cert/-key: %w", err)
	}
	ln, err := listen(listenAddr)
	if err != nil {
		return err
	}
	server := &http.Server{
		Handler:           logged(newHandler(registry, registryHosts, files)),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
	}
	log.Printf("serving on %s: registry hosts %v (-> %s), file hosts %s", ln.Addr(), registryHosts, registryAddr, hostDirs(files))
	return server.ServeTLS(ln, "", "")
}
