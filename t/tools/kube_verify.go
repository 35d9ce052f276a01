// kube_verify: kube-apiserver's token check, done by the library
// kube-apiserver's OIDC authenticator used (github.com/coreos/go-oidc v2,
// Debian golang-github-coreos-go-oidc-dev), for the test suite.
//
// It reads jobs on stdin, one JSON object a line:
//
//	{"issuer": "...", "client_id": "...", "token": "...",
//	 "username_claim": "preferred_username", "groups_claim": "groups",
//	 "signing_algs": ["RS256"], "now": 1700000000}
//
// and for each prints one JSON line on stdout:
//
//	{"ok": true, "aud": [...], "sub": "...", "iss": "...", "alg": "RS256",
//	 "username": "...", "groups": [...]}
//	{"ok": false, "error": "..."}
//
// As kube-apiserver does, it discovers the provider from the issuer
// (oidc.NewProvider fetches {issuer}/.well-known/openid-configuration, which
// must name that issuer exactly, and later the JWKS of its jwks_uri) and
// verifies with provider.Verifier(&oidc.Config{ClientID: --oidc-client-id,
// SupportedSigningAlgs: --oidc-signing-algs}): signature, iss, aud holding
// the client ID, exp, nbf. Then, like kube-apiserver, the username claim
// must be a non-empty string (with "email", email_verified must not be
// false) and the groups claim a string or an array of strings. Optional
// fields: username_claim (default "sub"), groups_claim (default none),
// signing_algs (--oidc-signing-algs; default RS256 and ES256, where
// kube-apiserver's default is RS256 alone), now (Unix seconds: the
// verifier's clock). One provider per issuer is kept for the whole run, as
// kube-apiserver keeps one.
//
// kube_verify -version prints the Go version it was built with.
//
// Build (GOPATH mode, no module proxy): see t/bin/kube_verify in the Makefile.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	oidc "github.com/coreos/go-oidc"
)

type job struct {
	Issuer        string   `json:"issuer"`
	ClientID      string   `json:"client_id"`
	Token         string   `json:"token"`
	UsernameClaim string   `json:"username_claim"`
	GroupsClaim   string   `json:"groups_claim"`
	SigningAlgs   []string `json:"signing_algs"`
	Now           int64    `json:"now"`
}

type result struct {
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
	Aud      []string `json:"aud,omitempty"`
	Sub      string   `json:"sub,omitempty"`
	Iss      string   `json:"iss,omitempty"`
	Alg      string   `json:"alg,omitempty"`
	Username string   `json:"username,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// What the module signs with: RSA and EC P-256 keys.
var defaultAlgs = []string{oidc.RS256, oidc.ES256}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-version" {
		fmt.Println(runtime.Version())
		return
	}
	// The provider keeps this context for its later JWKS fetches.
	ctx := oidc.ClientContext(context.Background(), &http.Client{Timeout: 10 * time.Second})
	providers := map[string]*oidc.Provider{}
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var j job
		var r result
		if err := json.Unmarshal(in.Bytes(), &j); err != nil {
			r.Error = "bad job: " + err.Error()
		} else {
			r = verify(ctx, providers, j)
		}
		if err := out.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "kube_verify:", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "kube_verify:", err)
		os.Exit(1)
	}
}

func verify(ctx context.Context, providers map[string]*oidc.Provider, j job) result {
	p, ok := providers[j.Issuer]
	if !ok {
		var err error
		if p, err = oidc.NewProvider(ctx, j.Issuer); err != nil {
			return result{Error: "discovery: " + err.Error()}
		}
		providers[j.Issuer] = p
	}
	cfg := &oidc.Config{ClientID: j.ClientID, SupportedSigningAlgs: defaultAlgs}
	if len(j.SigningAlgs) > 0 {
		cfg.SupportedSigningAlgs = j.SigningAlgs
	}
	if j.Now != 0 {
		now := time.Unix(j.Now, 0)
		cfg.Now = func() time.Time { return now }
	}
	t, err := p.Verifier(cfg).Verify(ctx, j.Token)
	if err != nil {
		return result{Error: err.Error()}
	}
	r := result{OK: true, Aud: t.Audience, Sub: t.Subject, Iss: t.Issuer, Alg: alg(j.Token)}
	var claims map[string]json.RawMessage
	if err := t.Claims(&claims); err != nil {
		return result{Error: "claims: " + err.Error()}
	}
	uc := j.UsernameClaim
	if uc == "" {
		uc = "sub"
	}
	if err := json.Unmarshal(claims[uc], &r.Username); err != nil || r.Username == "" {
		return result{Error: fmt.Sprintf("username claim %q: not a non-empty string", uc)}
	}
	if uc == "email" {
		if v, ok := claims["email_verified"]; ok {
			var verified bool
			if err := json.Unmarshal(v, &verified); err != nil || !verified {
				return result{Error: "email_verified: not true"}
			}
		}
	}
	if j.GroupsClaim != "" {
		if v, ok := claims[j.GroupsClaim]; ok {
			var one string
			if json.Unmarshal(v, &one) == nil {
				r.Groups = []string{one}
			} else if err := json.Unmarshal(v, &r.Groups); err != nil {
				return result{Error: fmt.Sprintf("groups claim %q: not a string or an array of strings", j.GroupsClaim)}
			}
		}
	}
	return r
}

// alg is the signature's algorithm, from the header Verify has accepted.
func alg(token string) string {
	h := strings.SplitN(token, ".", 2)[0]
	var hdr struct {
		Alg string `json:"alg"`
	}
	if b, err := base64.RawURLEncoding.DecodeString(h); err == nil {
		_ = json.Unmarshal(b, &hdr)
	}
	return hdr.Alg
}
