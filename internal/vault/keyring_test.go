package vault

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEncryptDecryptRotate(t *testing.T) {
	k1, k2, bidx := NewKeyMaterial(), NewKeyMaterial(), NewKeyMaterial()
	old, err := ParseKeyring("k1:"+k1, bidx)
	if err != nil {
		t.Fatal(err)
	}
	ct := old.Encrypt([]byte("234123412346"), []byte("aadhaar:ref-1"))
	if bytes.Contains(ct, []byte("234123412346")) {
		t.Fatal("plaintext in ciphertext")
	}
	if id, _, _ := KeyIDOf(ct); id != "k1" {
		t.Fatalf("key id %q", id)
	}
	both, err := ParseKeyring("k1:"+k1+", k2:"+k2, bidx)
	if err != nil || both.ActiveKeyID() != "k2" {
		t.Fatalf("%v %v", both, err)
	}
	pt, err := both.Decrypt(ct, []byte("aadhaar:ref-1"))
	if err != nil || string(pt) != "234123412346" {
		t.Fatalf("old ciphertext under the new ring: %q %v", pt, err)
	}
	if _, err := both.Decrypt(ct, []byte("aadhaar:ref-2")); err == nil {
		t.Fatal("ciphertext moved to another row still opens")
	}
	onlyNew, _ := ParseKeyring("k2:"+k2, bidx)
	if _, err := onlyNew.Decrypt(ct, []byte("aadhaar:ref-1")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("without k1: %v", err)
	}
	if !bytes.Equal(old.BlindIndex("pan", "AAPPV8261K"), both.BlindIndex("pan", "AAPPV8261K")) ||
		bytes.Equal(old.BlindIndex("pan", "AAPPV8261K"), old.BlindIndex("aadhaar", "AAPPV8261K")) {
		t.Fatal("blind index must depend on the blind-index key and kind only")
	}
}

func TestParseKeyringErrorsHideKeys(t *testing.T) {
	for _, bad := range []string{"", "nokey", "k1:short", "k1:" + NewKeyMaterial() + ",k1:" + NewKeyMaterial()} {
		_, err := ParseKeyring(bad, NewKeyMaterial())
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "short") && strings.Contains(bad, "short") && strings.Contains(err.Error(), "k1:short") {
			t.Errorf("error repeats key material: %v", err)
		}
	}
	if _, err := ParseKeyring("k1:"+NewKeyMaterial(), "c2hvcnQ="); err == nil {
		t.Error("short blind index key accepted")
	}
}
