package httpd

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authorized lets a request through to h only when it carries the
// server's token ("Authorization: Bearer <token>"): 403 when the server
// has no token (actions are off) or the token is wrong, 401 when the
// request has none. The tokens are compared in constant time, through
// their SHA-256 digests so that the comparison does not depend on their
// lengths either.
func (s *Server) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" {
			writeError(w, http.StatusForbidden, "actions are off: the member was started without --http-token")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qmgr"`)
			writeError(w, http.StatusUnauthorized, "this action needs the token: Authorization: Bearer <token>")
			return
		}
		want, have := sha256.Sum256([]byte(s.cfg.Token)), sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
			writeError(w, http.StatusForbidden, "wrong token")
			return
		}
		h(w, r)
	}
}
