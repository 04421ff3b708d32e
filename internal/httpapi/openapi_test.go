package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/usersvc/usersvc/internal/httpapi"
	"github.com/usersvc/usersvc/internal/httpapi/apidocs"
)

var spec struct {
	once   sync.Once
	router routers.Router
	err    error
}

func specRouter(t *testing.T) routers.Router {
	t.Helper()
	spec.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(apidocs.YAML())
		if err != nil {
			spec.err = err
			return
		}
		if spec.err = doc.Validate(context.Background()); spec.err != nil {
			return
		}
		spec.router, spec.err = gorillamux.NewRouter(doc)
	})
	if spec.err != nil {
		t.Fatalf("openapi.yaml: %v", spec.err)
	}
	return spec.router
}

// checkAgainstSpec is called by env.do for every request the integration tests make. The
// response must be one the document declares for the operation, with a body of the declared
// shape; and a request the document calls invalid must not succeed. Deliberately unknown
// routes must answer 404/405 (or 429: under /api they count against the rate limit).
func checkAgainstSpec(t *testing.T, req *http.Request, reqBody []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		return // a CORS preflight, answered by the CORS layer for every route
	}
	r2 := req.Clone(context.Background())
	if p := r2.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r2.URL.Path = strings.TrimRight(p, "/")
	}
	r2.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := specRouter(t).FindRoute(r2)
	if err != nil {
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusTooManyRequests && !strings.HasPrefix(r2.URL.Path, "/docs") && !strings.HasPrefix(r2.URL.Path, "/openapi") {
			t.Errorf("%s %s answered %d but is not in openapi.yaml", req.Method, req.URL.Path, rec.Code)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && rec.Code < 400 {
		t.Errorf("%s %s: the document calls the request invalid (%v) but the service answered %d", req.Method, req.URL.Path, firstLine(err), rec.Code)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: response %d does not match openapi.yaml: %v", req.Method, req.URL.Path, rec.Code, firstLine(err))
	}
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// TestOpenAPIDocument: the document is valid, served as JSON and YAML, and lists every route of
// the code.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, false)
	router := specRouter(t)
	for _, rt := range httpapi.Routes() {
		req := httptest.NewRequest(rt.Method, strings.ReplaceAll(rt.Path, ":id", "00000000-0000-4000-8000-000000000000"), nil)
		if _, _, err := router.FindRoute(req); err != nil {
			t.Errorf("%s %s is not documented", rt.Method, rt.Path)
		}
	}
	for path, ct := range map[string]string{"/openapi.json": "application/json", "/openapi.yaml": "application/yaml"} {
		r := e.do(t, "GET", path, nil, "Authorization", "")
		if r.Code != 200 || r.Header.Get("Content-Type") != ct {
			t.Errorf("%s: %d %s", path, r.Code, r.Header.Get("Content-Type"))
		}
		if _, err := openapi3.NewLoader().LoadFromData(r.Body); err != nil {
			t.Errorf("%s does not load: %v", path, err)
		}
	}
	for _, path := range []string{"/docs", "/docs/", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js"} {
		if r := e.do(t, "GET", path, nil, "Authorization", ""); r.Code != 200 || len(r.Body) == 0 {
			t.Errorf("%s: %d", path, r.Code)
		}
	}
}
