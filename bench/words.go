//go:build linux

package main

import (
	"math/rand/v2"
	"slices"
	"sync"
)

// The generated data must look like text to a compressor: a repeated line
// would compress 100x and flatter every tool, pure random letters would not
// compress at all. Real prose is words drawn with a Zipf-like frequency from
// a large vocabulary, which gives the 3-5x ratio that real dumps show, so
// that is what textGen does.

// commonWords head the vocabulary so the most frequent tokens look like
// English function words (purely cosmetic: the ranks matter, not the letters).
var commonWords = []string{
	"the", "of", "and", "to", "in", "is", "for", "on", "that", "with",
	"this", "it", "be", "as", "not", "from", "by", "are", "at", "when",
	"error", "user", "after", "should", "we", "fix", "can", "was", "if", "but",
	"an", "all", "test", "issue", "page", "data", "build", "see", "new", "file",
}

// language is the vocabulary and phrase pool, built on first use (not at
// init: the command spawner, which is this binary, must stay small). Both are
// built from fixed seeds, so they are the same on every run and independent
// of the -seed flag, which only moves the data, not the language.
var language = sync.OnceValues(func() ([]string, []string) {
	vocab := buildVocab(6000)
	return vocab, buildPhrases(vocab, 3000)
})

func buildVocab(n int) []string {
	onsets := []string{"b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
		"br", "cr", "dr", "fr", "gr", "pl", "st", "tr", "ch", "sh", "th", ""}
	nuclei := []string{"a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"}
	codas := []string{"", "", "", "n", "r", "s", "t", "l", "nd", "st", "ck", "m"}
	r := rand.New(rand.NewPCG(0x766f636162, 1))
	seen := make(map[string]bool, n)
	words := slices.Clone(commonWords)
	for _, w := range words {
		seen[w] = true
	}
	var extra []string
	for len(words)+len(extra) < n {
		// 1-4 syllables, short words more likely, as in natural languages.
		syl := 1 + min(r.IntN(4), r.IntN(4))
		var w []byte
		for range syl {
			w = append(w, onsets[r.IntN(len(onsets))]...)
			w = append(w, nuclei[r.IntN(len(nuclei))]...)
			w = append(w, codas[r.IntN(len(codas))]...)
		}
		if s := string(w); !seen[s] {
			seen[s] = true
			extra = append(extra, s)
		}
	}
	// Shorter words get the more frequent ranks (Zipf's law of abbreviation).
	slices.SortStableFunc(extra, func(a, b string) int { return len(a) - len(b) })
	return append(words, extra...)
}

// buildPhrases makes n frequent word sequences (collocations, boilerplate).
// Real text repeats them, and that repetition is most of what an LZ-style
// compressor finds in prose; independent words alone compress too little.
func buildPhrases(vocab []string, n int) []string {
	t := newTextGenWords(rand.New(rand.NewPCG(0x7068726173, 1)), vocab)
	out := make([]string, n)
	for i := range out {
		out[i] = string(t.words(nil, 2+t.r.IntN(5)))
	}
	return out
}

// textGen appends pseudo-prose drawn from r. All randomness comes from r, so
// reseeding r's source reproduces the same text.
type textGen struct {
	r       *rand.Rand
	vocab   []string
	zipf    *rand.Zipf // word ranks
	phrases []string   // nil while the phrases are being built
	pzipf   *rand.Zipf // phrase ranks
}

func newTextGen(r *rand.Rand) *textGen {
	vocab, phrases := language()
	t := newTextGenWords(r, vocab)
	t.phrases, t.pzipf = phrases, rand.NewZipf(r, phraseZipfS, phraseZipfV, uint64(len(phrases)-1))
	return t
}

// Word and phrase frequency parameters, tuned so that the generated dump
// compresses about 3.5-4x with zstd -3, like real pg_dump output.
const (
	wordZipfS    = 1.1
	wordZipfV    = 3
	phraseZipfS  = 1.3
	phraseZipfV  = 20
	phraseChance = 0.5 // chance that a sentence token is a phrase, not a word
)

func newTextGenWords(r *rand.Rand, vocab []string) *textGen {
	return &textGen{r: r, vocab: vocab, zipf: rand.NewZipf(r, wordZipfS, wordZipfV, uint64(len(vocab)-1))}
}

func (t *textGen) word() string { return t.vocab[t.zipf.Uint64()] }

// token is a word or, with phraseChance, a whole phrase.
func (t *textGen) token() string {
	if t.phrases != nil && t.r.Float64() < phraseChance {
		return t.phrases[t.pzipf.Uint64()]
	}
	return t.word()
}

// words appends n space-separated words.
func (t *textGen) words(b []byte, n int) []byte {
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, t.word()...)
	}
	return b
}

// sentence appends one capitalised sentence of 3-12 tokens.
func (t *textGen) sentence(b []byte) []byte {
	n := 3 + t.r.IntN(6) + t.r.IntN(5)
	start := len(b)
	for i := range n {
		if i > 0 {
			if t.r.IntN(9) == 0 {
				b = append(b, ',')
			}
			b = append(b, ' ')
		}
		b = append(b, t.token()...)
	}
	if c := b[start]; c >= 'a' && c <= 'z' {
		b[start] = c - 'a' + 'A'
	}
	return append(b, '.')
}

// paragraph appends 1-6 sentences.
func (t *textGen) paragraph(b []byte) []byte {
	n := 1 + t.r.IntN(6)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = t.sentence(b)
	}
	return b
}

// ident appends an identifier made of 1-3 words joined by sep.
func (t *textGen) ident(b []byte, sep byte) []byte {
	n := 1 + t.r.IntN(3)
	for i := range n {
		if i > 0 {
			b = append(b, sep)
		}
		b = append(b, t.word()...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// hex appends n random lower-case hex digits (hashes, keys, request ids):
// 4 bits of entropy per byte, like real hex columns.
func hexRand(b []byte, r *rand.Rand, n int) []byte {
	for n > 0 {
		v := r.Uint64()
		for i := 0; i < 16 && n > 0; i++ {
			b = append(b, hexDigits[v&15])
			v >>= 4
			n--
		}
	}
	return b
}
