package users

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Text rules shared by names, places, addresses and e-mail addresses. What is the same person,
// what is refused and why is written down in docs/security.md ("Identifiers and text").

// invisible reports whether r changes how text reads without being seen: the bidi controls
// (U+202E turns "gpj.exe" around), the format characters (zero-width space, soft hyphen, BOM,
// word joiner) and the rest of Unicode's default-ignorable code points (variation selectors,
// Hangul fillers). Such characters let two different strings look alike.
func invisible(r rune) bool {
	return unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r)
}

// Zero-width joiner and non-joiner: default-ignorable, but Indic scripts need them after a
// virama to choose a conjunct's form (RFC 5892, appendix A.1 and A.2, CONTEXTJ).
const zwnj, zwj = '\u200c', '\u200d'

// viramaClass is the canonical combining class of a virama.
const viramaClass = 9

// checkText refuses invalid UTF-8 (decoded JSON shows it as U+FFFD), control characters (but
// line breaks and tabs where multiline), private-use characters and noncharacters, and invisible
// characters other than a joiner right after a virama. It names the first offending character.
func checkText(s string, multiline bool) error {
	prev := rune(-1)
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return errors.New("must be valid UTF-8 text (it holds an invalid byte sequence or U+FFFD)")
		case unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')):
			return fmt.Errorf("must not contain control characters (%U)", r)
		case unicode.In(r, unicode.Zl, unicode.Zp): // U+2028, U+2029 break lines in logs and CSV
			return fmt.Errorf("must not contain line or paragraph separators (%U)", r)
		case (r == zwj || r == zwnj) && prev >= 0 && norm.NFC.PropertiesString(string(prev)).CCC() == viramaClass:
		case invisible(r):
			return fmt.Errorf("must not contain invisible or direction-changing characters (%U)", r)
		case unicode.Is(unicode.Co, r) || unicode.Is(unicode.Noncharacter_Code_Point, r):
			return fmt.Errorf("must not contain private-use or non-characters (%U)", r)
		}
		prev = r
	}
	return nil
}

// cleanText trims s, puts it in Unicode normal form C (so that "é" typed as one character or as
// "e" and a combining accent is stored alike), checks its characters (checkText) and its length
// in characters.
func cleanText(s string, minLen, maxLen int, multiline bool) (string, error) {
	if err := checkText(s, multiline); err != nil {
		return "", err
	}
	s = norm.NFC.String(strings.TrimSpace(s))
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen {
		return "", lengthError(minLen, maxLen)
	}
	return s, nil
}

// emailLocalKey is the uniqueness form of an address's local part: the RFC 8265
// UsernameCaseMapped profile (width-mapped, so "ｒａｊｅｓｈ" is "rajesh"; lower-cased; NFC, so
// a decomposed "é" is the composed one), after refusing invisible characters and mixed scripts.
func emailLocalKey(local string) (string, error) {
	if err := checkText(local, false); err != nil {
		return "", fmt.Errorf("the part before @ %w", err)
	}
	key, err := precis.UsernameCaseMapped.String(local)
	if err != nil {
		for _, r := range local {
			if _, err := precis.UsernameCaseMapped.String(string(r)); err != nil {
				return "", fmt.Errorf("the part before @ must not contain %U (not allowed in an identifier by RFC 8265)", r)
			}
		}
		return "", errors.New("the part before @ is not a valid identifier (RFC 8265)")
	}
	if err := singleScript(key); err != nil {
		return "", fmt.Errorf("the part before @ %w", err)
	}
	return key, nil
}

// Script sets that one label may mix (UTS 39, "highly restrictive"): Latin with the scripts that
// are written together with it in Japanese, Chinese and Korean.
var mixable = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// singleScript refuses a label whose letters come from scripts that are not written together,
// such as a Cyrillic "а" among Latin letters: the mark of a look-alike of another address.
// Digits, punctuation and combining marks (scripts Common and Inherited) go with any script.
func singleScript(label string) error {
	seen := map[string]bool{}
	var names []string
	for _, r := range label {
		name := scriptOf(r)
		if name == "" || name == "Common" || name == "Inherited" || seen[name] {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	if len(names) <= 1 {
		return nil
	}
	for _, set := range mixable {
		all := true
		for _, n := range names {
			all = all && slices.Contains(set, n)
		}
		if all {
			return nil
		}
	}
	return fmt.Errorf("mixes letters of different scripts (%s), as look-alikes of other addresses do", strings.Join(names, ", "))
}

// commonScripts are tried first: almost every letter is in one of them.
var commonScripts = []string{"Latin", "Common", "Inherited", "Devanagari", "Bengali", "Tamil", "Telugu",
	"Kannada", "Malayalam", "Gujarati", "Gurmukhi", "Oriya", "Arabic", "Cyrillic", "Greek", "Han"}

func scriptOf(r rune) string {
	for _, name := range commonScripts {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}
