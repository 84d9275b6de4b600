// Command benchrelay measures mailguard's relay throughput against the real
// peers on the same machine and in the same run: Postfix's smtp-source
// drives (1) smtp-sink directly, (2) mailguard relaying to smtp-sink and
// (3) a private Postfix relaying to smtp-sink, at several concurrencies and
// message sizes. It prints messages/second (until the sink has received
// every message, not just until the relay said 250), the ratio to direct,
// the ratio to Postfix and mailguard's peak RSS.
//
//	go run ./tests/benchrelay [-n 2000] [-conc 1,10,50] [-sizes 10240,102400] [-policy extra.hcl]
//	    [-compare LABEL=extra.hcl]...
//
// Each -compare adds another mailguard, with those policy blocks instead
// of -policy's, measured in the same run (interleaved with the others) and
// given as a ratio to the first: e.g. authentication on against off.
//
// With -dns-zone ZONEFILE it serves that zone (RFC 1035 master-file text)
// on a loopback DNS server (auth/dnstest) and points mailguard's
// dns.servers at it, so that -policy can hold DNS-backed checks (auth,
// reputation lists) without the machine's resolver. With -message FILE
// smtp-source sends that message (-F) instead of generated payloads.
//
// It needs root (smtp-sink -u, a private Postfix) and talks to loopback only.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailguard/mailguard/auth/dnstest"
)

func main() {
	n := flag.Int("n", 2000, "messages per run")
	concs := flag.String("conc", "1,10,50", "smtp-source concurrencies")
	sizes := flag.String("sizes", "10240,102400", "message sizes in bytes")
	extra := flag.String("policy", "", "file with extra policy blocks for mailguard (e.g. auth, yara) to measure the inspection path")
	label := flag.String("label", "bare relay", "name of the mailguard configuration in the output")
	skipPostfix := flag.Bool("no-postfix", false, "do not measure a Postfix relay")
	bin := flag.String("bin", "", "mailguard binary (default: build ./cmd/mailguard)")
	dnsZone := flag.String("dns-zone", "", "serve this zone file on a loopback DNS server and set mailguard's dns.servers to it")
	message := flag.String("message", "", "send this message file (smtp-source -F) instead of payloads of -sizes")
	var compare []config
	flag.Func("compare", "LABEL=FILE: another mailguard with these policy blocks, in the same run (repeatable)", func(v string) error {
		l, f, ok := strings.Cut(v, "=")
		if !ok || l == "" || f == "" {
			return fmt.Errorf("want LABEL=FILE")
		}
		compare = append(compare, config{label: l, policy: f})
		return nil
	})
	flag.Parse()
	cfgs := append([]config{{label: *label, policy: *extra}}, compare...)
	var err error
	if *dnsZone != "" {
		var srv *dnstest.Server
		var zone []byte
		if zone, err = os.ReadFile(*dnsZone); err == nil {
			srv, err = dnstest.NewServer(string(zone))
		}
		if err == nil {
			for i := range cfgs {
				if err == nil {
					cfgs[i].policy, err = withDNS(srv, cfgs[i].policy)
					defer os.Remove(cfgs[i].policy)
				}
			}
			if err == nil {
				err = run(*n, ints(*concs), ints(*sizes), cfgs, *skipPostfix, *bin, *message)
			}
			srv.Close()
		}
	} else {
		err = run(*n, ints(*concs), ints(*sizes), cfgs, *skipPostfix, *bin, *message)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrelay:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil {
			out = append(out, v)
		}
	}
	return out
}

// config is one mailguard under test: its label and the file of policy
// blocks added to the benchmark's base policy ("" for the bare relay).
type config struct {
	label, policy string
}

// barePolicy are the blocks of the bare relay: no authentication, no
// conversation memory, no YARA; the MIME walk and the policy still run.
const barePolicy = "auth { enabled = false }\nconversations { enabled = false }\n"

// withDNS writes a policy file with the blocks of extraPolicy (or the bare
// relay's) and a dns block pointing at srv.
func withDNS(srv *dnstest.Server, extraPolicy string) (string, error) {
	extra := []byte(barePolicy)
	if extraPolicy != "" {
		var err error
		if extra, err = os.ReadFile(extraPolicy); err != nil {
			return "", err
		}
	}
	f, err := os.CreateTemp("", "benchrelay-policy-*.hcl")
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "%s\ndns {\n  servers = [%q]\n}\n", extra, srv.Addr())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

func run(n int, concs, sizes []int, cfgs []config, skipPostfix bool, bin, message string) error {
	work, err := os.MkdirTemp("", "benchrelay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755) // the private Postfix runs as the postfix user
	if bin == "" {
		bin = filepath.Join(work, "mailguard")
		b := exec.Command("go", "build", "-o", bin, "./cmd/mailguard")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.stop()
	if message != "" {
		fi, err := os.Stat(message)
		if err != nil {
			return err
		}
		sink.message, sizes = message, []int{int(fi.Size())}
	}
	var mgs []*mailguard
	for i, c := range cfgs {
		mg, err := startMailguard(bin, filepath.Join(work, fmt.Sprintf("mg%d", i)), sink.addr, c.policy)
		if err != nil {
			return fmt.Errorf("%s: %w", c.label, err)
		}
		defer mg.stop()
		mgs = append(mgs, mg)
	}
	var pf *postfix
	if !skipPostfix {
		if pf, err = startPostfix(work, sink.addr); err != nil {
			return err
		}
		defer pf.stop()
	}
	fmt.Printf("# %d messages per run; %s; %d CPUs\n", n, time.Now().UTC().Format(time.RFC3339), numCPU())
	fmt.Printf("%-6s %-8s %12s %14s %12s %12s %10s %12s", "conc", "size", "direct msg/s",
		"mailguard msg/s", "postfix msg/s", "mg/direct", "mg/postfix", "mg peak RSS")
	for i := range cfgs[1:] {
		fmt.Printf(" %14s %10s %12s", fmt.Sprintf("mg%d msg/s", i+2), fmt.Sprintf("mg%d/mg", i+2), fmt.Sprintf("mg%d peak RSS", i+2))
	}
	fmt.Println()
	for _, size := range sizes {
		for _, c := range concs {
			direct := sink.measure(sink.addr, n, c, size)
			rates := make([]float64, len(mgs))
			for i, mg := range mgs {
				rates[i] = sink.measure(mg.addr, n, c, size)
			}
			pfRate := 0.0
			if pf != nil {
				pfRate = sink.measure(pf.addr, n, c, size)
			}
			ratioPF := "-"
			if pfRate > 0 {
				ratioPF = fmt.Sprintf("%.2fx", rates[0]/pfRate)
			}
			fmt.Printf("%-6d %-8d %12.0f %14.0f %12.0f %11.1f%% %10s %9d MiB", c, size, direct, rates[0],
				pfRate, 100*rates[0]/direct, ratioPF, mgs[0].peakRSS()>>20)
			for i, mg := range mgs[1:] {
				fmt.Printf(" %14.0f %10s %8d MiB", rates[i+1], fmt.Sprintf("%.2f", rates[i+1]/rates[0]), mg.peakRSS()>>20)
			}
			fmt.Println()
		}
	}
	fmt.Printf("# mailguard configuration: %s\n", cfgs[0].label)
	for i, c := range cfgs[1:] {
		fmt.Printf("# mg%d configuration: %s (%s)\n", i+2, c.label, c.policy)
	}
	return nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListen(addr string) error {
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening", addr)
}

// sink is smtp-sink with its running counter parsed.
type sink struct {
	addr    string
	cmd     *exec.Cmd
	count   atomic.Int64
	message string // smtp-source -F file, or "" for -l payloads
}

func startSink() (*sink, error) {
	s := &sink{addr: freeAddr()}
	s.cmd = exec.Command("smtp-sink", "-u", "nobody", "-c", s.addr, "1024")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`mesg=(\d+)`)
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\r')
			if m := re.FindStringSubmatch(line); m != nil {
				v, _ := strconv.ParseInt(m[1], 10, 64)
				s.count.Store(v)
			}
			if err != nil {
				return
			}
		}
	}()
	return s, waitListen(s.addr)
}

func (s *sink) stop() { s.cmd.Process.Kill(); s.cmd.Wait() }

// measure sends n messages of size bytes at concurrency c to addr and
// returns messages per second until the sink has received all of them.
func (s *sink) measure(addr string, n, c, size int) float64 {
	before := s.count.Load()
	start := time.Now()
	payload := []string{"-l", strconv.Itoa(size)}
	if s.message != "" {
		payload = []string{"-F", s.message}
	}
	src := exec.Command("smtp-source", append(append([]string{"-s", strconv.Itoa(c), "-m", strconv.Itoa(n)}, payload...),
		"-f", "bench@partner.example", "-t", "bench@corp.example", addr)...)
	if out, err := src.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "smtp-source to %s: %v %s\n", addr, err, out)
		return 0
	}
	deadline := time.Now().Add(10 * time.Minute)
	for s.count.Load()-before < int64(n) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := s.count.Load() - before
	el := time.Since(start).Seconds()
	if got < int64(n) {
		fmt.Fprintf(os.Stderr, "only %d of %d arrived via %s\n", got, n, addr)
	}
	time.Sleep(200 * time.Millisecond) // let the counter settle between runs
	return float64(got) / el
}

type mailguard struct {
	addr string
	cmd  *exec.Cmd
}

func startMailguard(bin, dir, sinkAddr, extraPolicy string) (*mailguard, error) {
	os.MkdirAll(dir, 0o755)
	// Policies may name the repository's YARA rules as ./rules.
	if rules, err := filepath.Abs("rules"); err == nil {
		os.Symlink(rules, filepath.Join(dir, "rules"))
	}
	m := &mailguard{addr: freeAddr()}
	extra := barePolicy
	if extraPolicy != "" {
		b, err := os.ReadFile(extraPolicy)
		if err != nil {
			return nil, err
		}
		extra = string(b)
	}
	pol := fmt.Sprintf(`gateway {
  hostname = "mx.bench.example"
  listen = [%q]
  local_domains = ["corp.example"]
}
limits {
  max_connections_per_ip = 200
  max_message_size = "200MB"
}
store { path = "./var" }
delivery {
  inbound_relay = %q
  tls = "off"
  concurrency = 50
}
log { level = "warn" }
%s`, m.addr, sinkAddr, extra)
	os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(pol), 0o644)
	m.cmd = exec.Command(bin, "serve", "--config", filepath.Join(dir, "policy.hcl"))
	m.cmd.Dir = dir
	m.cmd.Stderr = os.Stderr
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	return m, waitListen(m.addr)
}

func (m *mailguard) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.cmd.Wait()
}

// peakRSS is the process's high-water resident set (VmHWM).
func (m *mailguard) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	mm := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if mm == nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(mm[1]), 10, 64)
	return v << 10
}

// postfix is a private Postfix relaying everything to the sink.
type postfix struct {
	addr, conf string
}

func startPostfix(work, sinkAddr string) (*postfix, error) {
	dir := filepath.Join(work, "pf")
	p := &postfix{addr: freeAddr(), conf: filepath.Join(dir, "conf")}
	for _, d := range []string{"conf", "queue", "data"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return nil, err
	}
	exec.Command("chown", "postfix:postfix", filepath.Join(dir, "data")).Run()
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.bench.example
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = corp.example
relayhost = [%[2]s]:%[3]s
smtpd_recipient_restrictions = permit_mynetworks, reject
default_process_limit = 200
smtp_destination_concurrency_limit = 50
default_destination_concurrency_limit = 50
alias_maps =
alias_database =
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
`, dir, strings.Split(sinkAddr, ":")[0], strings.Split(sinkAddr, ":")[1])
	os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(main), 0o644)
	master := p.addr + ` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(master), 0o644)
	if out, err := exec.Command("postfix", "-c", p.conf, "start").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("postfix start: %v %s", err, out)
	}
	return p, waitListen(p.addr)
}

func (p *postfix) stop() { exec.Command("postfix", "-c", p.conf, "stop").Run() }
