//go:build deps

// This file pins the module's dependency set while packages are being
// written; it is never compiled (build tag "deps").

package mailguard

import (
	_ "blitiri.com.ar/go/spf"
	_ "github.com/bodgit/sevenzip"
	_ "github.com/diskfs/go-diskfs"
	_ "github.com/emersion/go-msgauth/authres"
	_ "github.com/emersion/go-msgauth/dkim"
	_ "github.com/emersion/go-msgauth/dmarc"
	_ "github.com/emersion/go-smtp"
	_ "github.com/gabriel-vasile/mimetype"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/gohcl"
	_ "github.com/hashicorp/hcl/v2/hclparse"
	_ "github.com/hashicorp/hcl/v2/hclsyntax"
	_ "github.com/hillu/go-yara/v4"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jhillyerd/enmime/v2"
	_ "github.com/miekg/dns"
	_ "github.com/mtibben/confusables"
	_ "github.com/nwaples/rardecode/v2"
	_ "github.com/pdfcpu/pdfcpu/pkg/api"
	_ "github.com/pires/go-proxyproto"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promauto"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/richardlehane/mscfb"
	_ "github.com/ulikunitz/xz"
	_ "github.com/zclconf/go-cty/cty"
	_ "golang.org/x/net/html"
	_ "golang.org/x/net/idna"
	_ "golang.org/x/net/publicsuffix"
	_ "golang.org/x/text/encoding/japanese"
	_ "golang.org/x/text/unicode/norm"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
