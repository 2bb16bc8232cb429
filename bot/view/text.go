// Package view builds what patbot shows in Slack: request cards, the
// grants listing, dialogs. Every builder is a pure function of what it is
// given (no Slack calls, no clock of its own), so that golden files pin
// them down; sending is bot's.
package view

import (
	"strings"
	"unicode"
)

// Every string patbot shows that someone else wrote (a token name, a
// reason, a repository or login, GitHub's answers) goes through Escape,
// Quote or Plain, on every surface: cards, fallback text, modals,
// DMs, listings. They make sure such text reads as text:
//   - inline text loses line breaks and backticks, so that it cannot end a
//     code span or start a line of its own;
//   - bidirectional and zero-width controls are removed everywhere, so
//     that text cannot be reordered or hidden (U+202E turns "exe.txt"
//     into what looks like "txt.exe");
//   - in mrkdwn, &, < and > are escaped: Slack reads only those as markup,
//     and this stops <!channel>, <@U…> and links from being injected.

// Escape makes text safe inline in mrkdwn.
func Escape(s string) string { return mrkdwnEscaper.Replace(cleanText(s, false)) }

// escapeLines makes text safe in mrkdwn where it may span lines (a reason,
// quoted).
func escapeLines(s string) string { return mrkdwnEscaper.Replace(cleanText(s, true)) }

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// cleanText removes what could disguise or reshape text: invisible and
// direction controls always; line breaks (as spaces) and backticks unless
// keepLines.
func cleanText(s string, keepLines bool) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == '`' || r < ' ' || r >= 0x7f && hidden(r) }) {
		return s // the common case: nothing to change
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' && keepLines:
			b.WriteRune(r)
		case r == '\n' || r == '\r' || r == '\t' || r == '\v' || r == '\f' || r == 0x85 || r == 0x2028 || r == 0x2029:
			b.WriteByte(' ')
		case r == '`' && !keepLines:
		case r < ' ' || hidden(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hidden reports the runes that change how text around them is shown
// without showing themselves: control characters, bidirectional controls
// (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), zero-width
// characters (U+200B–U+200D, U+2060, U+FEFF, U+180E) and other format
// characters (Unicode category Cf), and line or paragraph separators.
func hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029 || r == 0x180e
}
