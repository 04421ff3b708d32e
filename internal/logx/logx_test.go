package logx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
)

// Tokens from the pooled HMACs equal a fresh HMAC's, also when many goroutines share the pool.
func TestTokenMatchesHMAC(t *testing.T) {
	secret := []byte("a-log-hash-secret-of-32-bytes!!!")
	tok := NewTokenizer(secret)
	want := func(v string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(v))
		return hex.EncodeToString(m.Sum(nil)[:16])
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				v := fmt.Sprintf("203.0.113.%d", (g*500+i)%256)
				if got := tok.Token(v); got != want(v) {
					t.Errorf("Token(%q) = %s, want %s", v, got, want(v))
					return
				}
			}
		}()
	}
	wg.Wait()
	if got, w := (Tokenizer{key: secret}).Token("x"), want("x"); got != w {
		t.Errorf("a Tokenizer without a pool: %s, want %s", got, w)
	}
}

func BenchmarkToken(b *testing.B) {
	tok := NewTokenizer([]byte("a-log-hash-secret-of-32-bytes!!!"))
	for b.Loop() {
		tok.Token("203.0.113.77")
	}
}

func BenchmarkTokenUnpooled(b *testing.B) {
	tok := Tokenizer{key: []byte("a-log-hash-secret-of-32-bytes!!!")}
	for b.Loop() {
		tok.Token("203.0.113.77")
	}
}
