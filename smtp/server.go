package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"
)

// DefaultShutdownTimeout is how long Serve lets sessions finish after its
// context is cancelled.
const DefaultShutdownTimeout = 30 * time.Second

// Server is the inbound SMTP server.
type Server struct {
	cfg      Config
	h        Handler
	log      *slog.Logger
	gs       *gosmtp.Server
	local    domains
	trusted  []netip.Prefix
	internal []netip.Prefix
	limits   *limiter

	tlsConfig *tls.Config
	cert      atomic.Pointer[tls.Certificate]

	bodyBufs sync.Pool // *bufio.Reader of bodyBufSize, for DATA bodies

	baseCtx    context.Context
	baseCancel context.CancelFunc

	stopOnce sync.Once
	stopped  chan struct{}

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	serving   bool
	closed    bool
}

// NewServer checks cfg and builds a server; Listen or Serve opens the
// sockets. log may be nil.
func NewServer(cfg Config, h Handler, log *slog.Logger) (*Server, error) {
	if h == nil {
		return nil, &configError{"a Handler is required"}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	local, err := newDomains(cfg.LocalDomains, cfg.LocalSubdomains)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		h:        h,
		log:      log,
		local:    local,
		trusted:  unmapPrefixes(cfg.TrustedProxies),
		internal: unmapPrefixes(cfg.InternalNetworks),
		limits:   newLimiter(cfg.MaxConns, cfg.MaxConnsPerIP),
		conns:    map[*conn]struct{}{},
	}
	s.bodyBufs.New = func() any { return bufio.NewReaderSize(nil, bodyBufSize) }
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	if err := s.setupTLS(); err != nil {
		return nil, err
	}
	s.gs = s.newGoSMTP()
	return s, nil
}

func checkConfig(cfg *Config) error {
	if cfg.Hostname == "" || !printableASCII(cfg.Hostname) {
		return &configError{"Hostname is required (printable ASCII)"}
	}
	if len(cfg.Listen) == 0 {
		return &configError{"at least one Listen address is required"}
	}
	for _, l := range cfg.Listen {
		if l.ImplicitTLS && cfg.TLS == nil && cfg.CertFile == "" {
			return &configError{"listener " + l.Addr + " uses ImplicitTLS but no TLS is configured"}
		}
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return &configError{"CertFile and KeyFile go together"}
	}
	if cfg.MaxCommandLength < 512 {
		return &configError{"MaxCommandLength below 512 (RFC 5321 §4.5.3.1.4)"}
	}
	return nil
}

func unmapPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

func (s *Server) setupTLS() error {
	if s.cfg.TLS == nil && s.cfg.CertFile == "" {
		return nil
	}
	cfg := &tls.Config{}
	if s.cfg.TLS != nil {
		cfg = s.cfg.TLS.Clone()
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if s.cfg.CertFile != "" {
		if err := s.ReloadTLS(); err != nil {
			return err
		}
		cfg.Certificates = nil
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		}
	}
	s.tlsConfig = cfg
	return nil
}

// ReloadTLS loads CertFile and KeyFile again (call it on SIGHUP). New
// handshakes use the new certificate; on error the old one stays.
func (s *Server) ReloadTLS() error {
	if s.cfg.CertFile == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("smtp: load certificate: %w", err)
	}
	s.cert.Store(&cert)
	return nil
}

func (s *Server) newGoSMTP() *gosmtp.Server {
	gs := gosmtp.NewServer(backend{s})
	gs.Domain = s.cfg.Hostname
	gs.MaxMessageBytes = s.cfg.MaxMessageBytes
	gs.MaxRecipients = s.cfg.MaxRecipients
	gs.MaxLineLength = s.cfg.MaxLineLength
	gs.EnableSMTPUTF8 = true
	gs.ReadTimeout = 0 // the front end owns read deadlines
	gs.WriteTimeout = s.cfg.CommandTimeout
	gs.ErrorLog = debugLogger{s.log}
	return gs
}

// debugLogger sends go-smtp's internal error log to Debug.
type debugLogger struct{ log *slog.Logger }

// Printf implements go-smtp's Logger.
func (d debugLogger) Printf(format string, v ...any) {
	d.log.Debug("go-smtp", "msg", fmt.Sprintf(format, v...))
}

// Println implements go-smtp's Logger.
func (d debugLogger) Println(v ...any) { d.log.Debug("go-smtp", "msg", fmt.Sprint(v...)) }

// Listen opens every configured address. It is called by Serve when needed;
// calling it first lets a caller learn the addresses (port 0) with Addrs.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return gosmtp.ErrServerClosed
	}
	if len(s.listeners) > 0 {
		return nil
	}
	var ls []net.Listener
	for _, conf := range s.cfg.Listen {
		ln, err := net.Listen("tcp", conf.Addr)
		if err != nil {
			for _, l := range ls {
				_ = l.Close() // best effort: we are failing anyway
			}
			return fmt.Errorf("smtp: listen %s: %w", conf.Addr, err)
		}
		if conf.Proxy {
			ln = &proxyproto.Listener{
				Listener:          ln,
				ConnPolicy:        s.proxyPolicy(conf),
				ReadHeaderTimeout: s.cfg.ProxyHeaderTimeout,
			}
		}
		ls = append(ls, &listener{Listener: ln, srv: s, conf: conf})
	}
	s.listeners = ls
	return nil
}

// Addrs returns the listening addresses (after Listen).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Serve accepts connections on every listener until ctx is cancelled, then
// shuts down gracefully (DefaultShutdownTimeout) and returns nil. If a
// listener fails, the server is closed and the error returned.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("smtp: Serve called twice")
	}
	s.serving = true
	ls := s.listeners
	s.mu.Unlock()

	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- s.gs.Serve(l) }()
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), DefaultShutdownTimeout)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	case err := <-errc:
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if err == nil || closed {
			return nil // Shutdown or Close was called
		}
		cerr := s.Close()
		if cerr != nil && !errors.Is(cerr, gosmtp.ErrServerClosed) {
			s.log.Debug("smtp close after listener failure", "err", cerr)
		}
		return fmt.Errorf("smtp: serve: %w", err)
	}
}

// Shutdown stops accepting, asks every session to end at its next command
// boundary outside a transaction (421 4.3.2), and waits for them. When ctx
// ends first, the remaining connections are closed and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	done := s.stop()
	select {
	case <-done:
		s.baseCancel()
		return nil
	case <-ctx.Done():
		s.forceClose()
		return ctx.Err()
	}
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.forceClose()
	return nil
}

// stop runs go-smtp's Shutdown once (it closes the listeners it serves and
// waits for its connections); the channel closes when it returns. go-smtp's
// Close and Shutdown must not both run: each closes the same channel.
func (s *Server) stop() <-chan struct{} {
	s.stopOnce.Do(func() {
		s.stopped = make(chan struct{})
		go func() {
			defer close(s.stopped)
			err := s.gs.Shutdown(context.Background())
			if err != nil && !errors.Is(err, gosmtp.ErrServerClosed) {
				s.log.Debug("smtp shutdown", "err", err)
			}
			s.closeListeners()
		}()
	})
	return s.stopped
}

func (s *Server) forceClose() {
	s.baseCancel()
	s.closeListeners()
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close() // the peer may already be gone
	}
}

// closeListeners closes our listeners too: go-smtp only knows those its
// Serve has started with.
func (s *Server) closeListeners() {
	s.mu.Lock()
	ls := s.listeners
	s.mu.Unlock()
	for _, l := range ls {
		_ = l.Close() // "use of closed network connection" when go-smtp did it first
	}
}

func (s *Server) track(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	metricActiveConns.Inc()
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	metricActiveConns.Dec()
}

// backend is the go-smtp Backend; it is not part of Server's API.
type backend struct{ s *Server }

// NewSession is go-smtp's hook, called at the first EHLO/HELO.
func (b backend) NewSession(gc *gosmtp.Conn) (gosmtp.Session, error) {
	c, ok := gc.Conn().(*conn)
	if !ok {
		return nil, errors.New("smtp: connection did not come through the front end")
	}
	return &session{srv: b.s, c: c}, nil
}

var _ gosmtp.Backend = backend{}
