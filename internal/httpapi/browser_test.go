package httpapi_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/usersvc/usersvc/internal/httpapi/apidocs"
)

// TestDocsInBrowser loads /docs in a real headless Chromium (Debian's chromium package): every
// operation of the document is listed, and one authorised call is executed through the page.
func TestDocsInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (.ci/run installs Debian's chromium)")
		}
		t.Skip("chromium is not installed: apt-get install chromium (CI installs it and never skips)")
	}
	e := newEnv(t, false)
	e.create(t, newPerson())
	srv := httptestServer(t, e)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser, %s: %v", name, err)
		}
	}
	step("open /docs", chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/docs"),
		chromedp.WaitVisible(`#operations-users-listUsers`)))
	ops, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('.opblock').length`))
	step("count operations", err)
	step("authorize", chromedp.Do(ctx,
		chromedp.Click(`.btn.authorize`),
		chromedp.WaitVisible(`.auth-container input`),
		chromedp.SendKeys(`.auth-container input`, e.key),
		chromedp.Click(`.auth-btn-wrapper .modal-btn.authorize`),
		chromedp.Click(`.btn-done`)))
	step("try it out", chromedp.Do(ctx,
		chromedp.Click(`#operations-users-listUsers .opblock-summary-control`),
		chromedp.WaitVisible(`#operations-users-listUsers .try-out__btn`),
		chromedp.Click(`#operations-users-listUsers .try-out__btn`),
		chromedp.Click(`#operations-users-listUsers .execute`),
		chromedp.WaitVisible(`#operations-users-listUsers .live-responses-table tr.response .response-col_status`)))
	status, err := chromedp.Run(ctx, chromedp.Text(`#operations-users-listUsers .live-responses-table tr.response .response-col_status`))
	step("read status", err)
	body, err := chromedp.Run(ctx, chromedp.Text(`#operations-users-listUsers .live-responses-table tr.response .response-col_description`))
	step("read body", err)
	if want := strings.Count(string(apidocs.YAML()), "operationId:"); ops != want {
		t.Errorf("Swagger UI lists %d operations, the document has %d", ops, want)
	}
	if strings.TrimSpace(status) != "200" || !strings.Contains(body, `"total"`) {
		t.Errorf("call through the page: status %q, body %.200q", status, body)
	}
}
