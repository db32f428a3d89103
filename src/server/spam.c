/* Comment spam filter: tokeniser, features, the logistic model and the
 * verdict. See spam.h; the model is spam_model.inc (tools/spam_train). */
#include "server/spam.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One entry of the token table: sorted by tok (strcmp order). */
typedef struct {
  const char *tok;
  float w; /* naive Bayes log-likelihood ratio, spam over ham */
} model_tok;

#include "server/spam_model.inc"

const char *spam_verdict_name(spam_verdict v) {
  switch (v) {
  case SPAM_HAM: return "ham";
  case SPAM_HELD: return "held";
  case SPAM_SPAM: return "spam";
  }
  return "?";
}

/* ---- UTF-8 and character folding ----------------------------------------- */

/* The next code point of s at *i; an invalid or truncated sequence yields
 * U+FFFD and advances one byte. */
static uint32_t next_cp(const uint8_t *s, size_t n, size_t *i) {
  uint8_t b = s[*i];
  if (b < 0x80) {
    (*i)++;
    return b;
  }
  size_t need;
  uint32_t c, min;
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
    c = b & 0x1F;
    min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    c = b & 0x0F;
    min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    c = b & 0x07;
    min = 0x10000;
  } else {
    (*i)++;
    return 0xFFFD;
  }
  if (*i + need >= n) { /* truncated */
    (*i)++;
    return 0xFFFD;
  }
  for (size_t k = 1; k <= need; k++) {
    uint8_t cb = s[*i + k];
    if ((cb & 0xC0) != 0x80) {
      (*i)++;
      return 0xFFFD;
    }
    c = (c << 6) | (cb & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
    (*i)++;
    return 0xFFFD;
  }
  *i += need + 1;
  return c;
}

enum ckind {
  CK_SPACE,    /* separates chunks */
  CK_DROP,     /* variation selectors, combining marks, skin tones */
  CK_ZW,       /* zero-width and bidi format characters */
  CK_PUNCT,    /* ascii holds the ASCII punctuation it stands for, or 0 */
  CK_CURRENCY, /* $ € £ ... */
  CK_LETTER,   /* ascii holds the folded lower-case letter */
  CK_DIGIT,    /* ascii holds the digit */
  CK_OTHER,    /* a letter of another script: cp, lower-cased where known */
  CK_EMOJI
};

enum {
  FL_UPPER = 1,     /* upper-case in the original */
  FL_FANCY = 2,     /* fullwidth, maths, circled, small-caps letter */
  FL_HOMOGLYPH = 4, /* Cyrillic or Greek letter folded to a Latin look-alike */
  FL_NATIVE = 8     /* a plain ASCII letter */
};

typedef struct {
  uint8_t kind, flags;
  char ascii;
  uint32_t cp;
} unit;

/* Latin-1 U+00C0..U+00FF and Latin Extended-A U+0100..U+017F to their
 * base letters (' ': not a letter). */
static const char LATIN1[] =
    "aaaaaaaceeeeiiiidnooooo ouuuuytsaaaaaaaceeeeiiiidnooooo ouuuuyty";
static const char LATIN_EXT_A[] =
    "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiiijjkkk"
    "llllllllllnnnnnnnnnoooooooorrrrrrssssssssttttttuuuuuuuuuuu"
    "uwwyyyzzzzzzs";

/* Lower-case Cyrillic and Greek letters that look like Latin ones. */
static char homoglyph(uint32_t c) {
  switch (c) {
  case 0x430: return 'a';
  case 0x432: return 'b';
  case 0x435:
  case 0x451: return 'e';
  case 0x43A: return 'k';
  case 0x43C: return 'm';
  case 0x43D:
  case 0x4BB: return 'h';
  case 0x43E: return 'o';
  case 0x440: return 'p';
  case 0x441: return 'c';
  case 0x442: return 't';
  case 0x443: return 'y';
  case 0x445: return 'x';
  case 0x456: return 'i';
  case 0x458: return 'j';
  case 0x455: return 's';
  case 0x501: return 'd';
  case 0x4CF: return 'l';
  case 0x51B: return 'q';
  case 0x51D: return 'w';
  case 0x3B1: return 'a';
  case 0x3B2: return 'b';
  case 0x3B5: return 'e';
  case 0x3B9: return 'i';
  case 0x3BA: return 'k';
  case 0x3BD: return 'v';
  case 0x3BF: return 'o';
  case 0x3C1: return 'p';
  case 0x3C4: return 't';
  case 0x3C5: return 'u';
  case 0x3C7: return 'x';
  case 0x3C9: return 'w';
  case 0x3B6: return 'z';
  default: return 0;
  }
}

/* Letter-like symbols and small capitals used as fancy letters. */
static char fancy_letter(uint32_t c) {
  static const struct {
    uint16_t cp;
    char a;
  } t[] = {{0x0262, 'g'}, {0x026A, 'i'}, {0x0274, 'n'}, {0x0280, 'r'}, {0x028F, 'y'},
           {0x0299, 'b'}, {0x029C, 'h'}, {0x029F, 'l'}, {0x1D00, 'a'}, {0x1D04, 'c'},
           {0x1D05, 'd'}, {0x1D07, 'e'}, {0x1D0A, 'j'}, {0x1D0B, 'k'}, {0x1D0D, 'm'},
           {0x1D0F, 'o'}, {0x1D18, 'p'}, {0x1D1B, 't'}, {0x1D1C, 'u'}, {0x1D20, 'v'},
           {0x1D21, 'w'}, {0x1D22, 'z'}, {0x2102, 'c'}, {0x210A, 'g'}, {0x210B, 'h'},
           {0x210C, 'h'}, {0x210D, 'h'}, {0x210E, 'h'}, {0x2110, 'i'}, {0x2111, 'i'},
           {0x2112, 'l'}, {0x2115, 'n'}, {0x2119, 'p'}, {0x211A, 'q'}, {0x211B, 'r'},
           {0x211C, 'r'}, {0x211D, 'r'}, {0x2124, 'z'}, {0x2128, 'z'}, {0x212C, 'b'},
           {0x212D, 'c'}, {0x212F, 'e'}, {0x2130, 'e'}, {0x2131, 'f'}, {0x2133, 'm'},
           {0x2134, 'o'}, {0xA730, 'f'}, {0xA731, 's'}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i].cp == c) return t[i].a;
  return 0;
}

static bool is_emoji(uint32_t c) {
  return (c >= 0x1F000 && c <= 0x1FAFF) || (c >= 0x2600 && c <= 0x27BF) ||
         (c >= 0x2B00 && c <= 0x2BFF) || (c >= 0x2300 && c <= 0x23FF) ||
         (c >= 0x2190 && c <= 0x21FF) || (c >= 0x25A0 && c <= 0x25FF) || c == 0x203C ||
         c == 0x2049 || c == 0x00A9 || c == 0x00AE || c == 0x2122 || c == 0x2139 ||
         c == 0x3030 || c == 0x303D || c == 0x3297 || c == 0x3299;
}

static unit fold(uint32_t c) {
  unit u = {CK_OTHER, 0, 0, c};
  if (c < 0x80) {
    if (c >= 'A' && c <= 'Z')
      return (unit){CK_LETTER, FL_UPPER | FL_NATIVE, (char)(c + 32), c};
    if (c >= 'a' && c <= 'z') return (unit){CK_LETTER, FL_NATIVE, (char)c, c};
    if (c >= '0' && c <= '9') return (unit){CK_DIGIT, 0, (char)c, c};
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return (unit){CK_SPACE, 0, 0, c};
    if (c == '$') return (unit){CK_CURRENCY, 0, '$', c};
    if (c < 0x20 || c == 0x7F) return (unit){CK_DROP, 0, 0, c};
    return (unit){CK_PUNCT, 0, (char)c, c};
  }
  /* spaces and invisible characters */
  if (c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
      c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000)
    return (unit){CK_SPACE, 0, 0, c};
  if ((c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
      (c >= 0x2060 && c <= 0x206F) || c == 0xFEFF || c == 0xAD || c == 0x34F ||
      c == 0x180E || c == 0x61C)
    return (unit){CK_ZW, 0, 0, c};
  if ((c >= 0xFE00 && c <= 0xFE0F) || (c >= 0x300 && c <= 0x36F) ||
      (c >= 0x1F3FB && c <= 0x1F3FF) || (c >= 0xE0000 && c <= 0xE007F) || c == 0x20E3 ||
      c == 0xFFFD)
    return (unit){CK_DROP, 0, 0, c};
  /* Latin letters with accents */
  if (c >= 0xC0 && c <= 0xFF) {
    char a = LATIN1[c - 0xC0];
    if (a == ' ') return (unit){CK_PUNCT, 0, 0, c};
    return (unit){CK_LETTER, c < 0xDF ? FL_UPPER : 0, a, c};
  }
  if (c >= 0x100 && c <= 0x17F)
    return (unit){CK_LETTER, (c & 1) ? 0 : FL_UPPER, LATIN_EXT_A[c - 0x100], c};
  if ((c >= 0xA2 && c <= 0xA5) || (c >= 0x20A0 && c <= 0x20CF))
    return (unit){CK_CURRENCY, 0, '$', c};
  if (c >= 0xA1 && c <= 0xBF) return (unit){CK_PUNCT, 0, 0, c};
  /* Cyrillic and Greek: lower-case, then look-alikes */
  uint8_t up = 0;
  if (c >= 0x410 && c <= 0x42F) {
    c += 0x20;
    up = FL_UPPER;
  } else if (c >= 0x400 && c <= 0x40F) {
    c += 0x50;
    up = FL_UPPER;
  } else if (c >= 0x391 && c <= 0x3A9) {
    c += 0x20;
    up = FL_UPPER;
  }
  if (c >= 0x370 && c <= 0x52F) {
    char h = homoglyph(c);
    if (h) return (unit){CK_LETTER, (uint8_t)(up | FL_HOMOGLYPH), h, c};
    return (unit){CK_OTHER, up, 0, c};
  }
  /* fancy letters: fullwidth, maths, circled, squared, small capitals */
  if (c >= 0xFF01 && c <= 0xFF5E) {
    unit a = fold(c - 0xFEE0);
    if (a.kind == CK_LETTER || a.kind == CK_DIGIT)
      a.flags = (uint8_t)((a.flags & FL_UPPER) | FL_FANCY);
    return a;
  }
  if (c >= 0x1D400 && c <= 0x1D6A3) {
    uint32_t k = (c - 0x1D400) % 52;
    return (unit){CK_LETTER, (uint8_t)(FL_FANCY | (k < 26 ? FL_UPPER : 0)),
                  (char)('a' + (k % 26)), c};
  }
  if (c >= 0x1D7CE && c <= 0x1D7FF)
    return (unit){CK_DIGIT, FL_FANCY, (char)('0' + (c - 0x1D7CE) % 10), c};
  if (c >= 0x24B6 && c <= 0x24E9)
    return (unit){CK_LETTER, (uint8_t)(FL_FANCY | (c < 0x24D0 ? FL_UPPER : 0)),
                  (char)('a' + (c - 0x24B6) % 26), c};
  if (c >= 0x2460 && c <= 0x2468)
    return (unit){CK_DIGIT, FL_FANCY, (char)('1' + c - 0x2460), c};
  if ((c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return (unit){CK_LETTER, FL_FANCY | FL_UPPER, (char)('a' + (c - 0x1F130) % 32 % 26),
                  c};
  char f = fancy_letter(c);
  if (f) return (unit){CK_LETTER, FL_FANCY, f, c};
  if (is_emoji(c)) return (unit){CK_EMOJI, 0, 0, c};
  if ((c >= 0x2010 && c <= 0x205E) || (c >= 0x3001 && c <= 0x303F) ||
      (c >= 0x2100 && c <= 0x214F) || (c >= 0xFF5F && c <= 0xFF65))
    return (unit){CK_PUNCT, 0, (c == 0x2018 || c == 0x2019) ? '\'' : 0, c};
  return u;
}

static size_t utf8_put(char *out, uint32_t c) {
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | (c >> 12));
    out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (c >> 18));
  out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* ---- fingerprint ---------------------------------------------------------- */

static char leet(char d) {
  switch (d) {
  case '0': return 'o';
  case '1': return 'i';
  case '3': return 'e';
  case '4': return 'a';
  case '5': return 's';
  case '7': return 't';
  case '8': return 'b';
  case '9': return 'g';
  default: return 0;
  }
}

#define FNV_OFFSET 0xcbf29ce484222325u
#define FNV_PRIME 0x100000001b3u

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

uint64_t spam_fingerprint(const char *text, size_t len) {
  const uint8_t *s = (const uint8_t *)(text ? text : "");
  if (!text) len = 0;
  uint64_t h = FNV_OFFSET;
  uint32_t last = 0;
  for (size_t i = 0; i < len;) {
    unit u = fold(next_cp(s, len, &i));
    uint32_t v;
    switch (u.kind) {
    case CK_LETTER: v = (uint8_t)u.ascii; break;
    case CK_DIGIT: v = leet(u.ascii) ? (uint8_t)leet(u.ascii) : (uint8_t)u.ascii; break;
    case CK_CURRENCY: v = 's'; break; /* "ca$h" */
    case CK_OTHER:
    case CK_EMOJI: v = u.cp; break;
    default: continue; /* spaces, punctuation, invisible characters */
    }
    if (v == last) continue;
    last = v;
    char b[4];
    size_t n = utf8_put(b, v);
    for (size_t k = 0; k < n; k++) h = (h ^ (uint8_t)b[k]) * FNV_PRIME;
  }
  return mix64(h);
}

/* ---- tokeniser -------------------------------------------------------------- */

#define SEEN_SLOTS 1024
#define SEEN_MAX 512
#define CHUNK_MAX 256 /* units of one whitespace-separated chunk */
#define SPELL_MAX 32  /* letters of a spaced-out word ("f r e e") */

typedef struct {
  spam_token_fn fn;
  void *ctx;
  spam_content *c;
  uint64_t seen[SEEN_SLOTS]; /* hashes of emitted tokens; 0 = empty */
  unsigned nseen;
  char prev[SPAM_TOKEN_MAX]; /* last word, for bigrams */
  size_t prev_len;
  char spell[SPELL_MAX]; /* pending single letters */
  size_t spell_len;
} tokenizer;

static void emit_raw(tokenizer *t, const char *tok, size_t n) {
  if (n > SPAM_TOKEN_MAX) n = SPAM_TOKEN_MAX;
  uint64_t h = FNV_OFFSET;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)tok[i]) * FNV_PRIME;
  h = mix64(h) | 1;
  size_t slot = h % SEEN_SLOTS;
  while (t->seen[slot]) {
    if (t->seen[slot] == h) return;
    slot = (slot + 1) % SEEN_SLOTS;
  }
  if (t->nseen >= SEEN_MAX) return;
  t->seen[slot] = h;
  t->nseen++;
  if (t->fn) t->fn(t->ctx, tok, n);
}

static void emit(tokenizer *t, const char *prefix, const char *s, size_t n) {
  char tok[SPAM_TOKEN_MAX];
  size_t p = strlen(prefix);
  if (n > SPAM_TOKEN_MAX - p) n = SPAM_TOKEN_MAX - p;
  memcpy(tok, prefix, p);
  memcpy(tok + p, s, n);
  emit_raw(t, tok, p + n);
}

/* A word token and its bigram with the previous word. */
static void emit_word(tokenizer *t, const char *w, size_t n) {
  if (n == 0) return;
  if (n > SPAM_TOKEN_MAX - 2) n = SPAM_TOKEN_MAX - 2;
  t->c->words++;
  emit(t, "w:", w, n);
  if (t->prev_len) {
    char bg[2 * SPAM_TOKEN_MAX];
    memcpy(bg, t->prev, t->prev_len);
    bg[t->prev_len] = ' ';
    memcpy(bg + t->prev_len + 1, w, n);
    emit(t, "b:", bg, t->prev_len + 1 + n);
  }
  memcpy(t->prev, w, n);
  t->prev_len = n;
}

/* Ends a run of single letters: three or more are one spelled-out word
 * ("f r e e"); at a double space, where spelled-out text puts its word
 * breaks, two are enough ("m e"). */
static void spell_flush_min(tokenizer *t, size_t min) {
  if (t->spell_len >= min) {
    t->c->obfuscated++;
    emit_word(t, t->spell, t->spell_len);
  } else {
    for (size_t i = 0; i < t->spell_len; i++) emit_word(t, &t->spell[i], 1);
  }
  t->spell_len = 0;
}

static void spell_flush(tokenizer *t) { spell_flush_min(t, 3); }

static bool is_word_unit(const unit *u) {
  return u->kind == CK_LETTER || u->kind == CK_DIGIT || u->kind == CK_OTHER;
}

/* Collapses runs of three or more equal ASCII letters to two. */
static size_t collapse_runs(char *w, size_t n, bool *changed) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (o >= 2 && w[i] == w[o - 1] && w[i] == w[o - 2] && w[i] >= 'a' && w[i] <= 'z') {
      *changed = true;
      continue;
    }
    w[o++] = w[i];
  }
  return o;
}

/* One word of units u[0..n): numbers, leet, look-alikes, spelling runs. */
static void word(tokenizer *t, const unit *u, size_t n, bool money_before,
                 bool money_after) {
  char w[SPAM_TOKEN_MAX * 2];
  size_t wl = 0, letters = 0, digits = 0, other = 0;
  unsigned flags = 0;
  for (size_t i = 0; i < n && wl + 4 < sizeof w; i++) {
    flags |= u[i].flags;
    if (u[i].kind == CK_OTHER) {
      wl += utf8_put(w + wl, u[i].cp);
      other++;
    } else {
      w[wl++] = u[i].ascii;
      if (u[i].kind == CK_DIGIT)
        digits++;
      else
        letters++;
    }
  }
  if (wl == 0) return;
  if ((flags & FL_FANCY) || ((flags & FL_HOMOGLYPH) && (flags & FL_NATIVE)))
    t->c->obfuscated++;
  if (digits && !letters && !other) {
    spell_flush(t);
    if (money_before || money_after) {
      t->c->money++;
      emit_word(t, "$", 1);
    } else {
      emit_word(t, "#", 1);
    }
    return;
  }
  if (digits && w[0] >= '0' && w[0] <= '9') {
    /* "10k" is an amount; "2day", "24h" stay as they are */
    if (w[wl - 1] == 'k' && letters == 1) {
      spell_flush(t);
      t->c->money++;
      emit_word(t, "$", 1);
      return;
    }
  } else if (digits && letters >= 2) {
    /* "fr33", "m0ney": digits inside a word are letters in disguise */
    bool mapped = false;
    for (size_t i = 0; i < wl; i++) {
      char l = (w[i] >= '0' && w[i] <= '9') ? leet(w[i]) : 0;
      if (l) {
        w[i] = l;
        mapped = true;
      }
    }
    if (mapped) t->c->obfuscated++;
  }
  bool elong = false;
  wl = collapse_runs(w, wl, &elong);
  if (elong) t->c->elongated++;
  if (wl == 1 && w[0] >= 'a' && w[0] <= 'z') {
    if (t->spell_len < SPELL_MAX) t->spell[t->spell_len++] = w[0];
    return;
  }
  spell_flush(t);
  emit_word(t, w, wl);
}

static bool tld_known(const char *s, size_t n) {
  /* Common TLDs; a schemeless link needs one of these (two-letter TLDs that
   * are English words need a path too, see is_url). */
  static const char *const tlds[] = {
      "com",    "net",     "org",   "io",    "co",      "me",    "ly",   "gd",
      "at",     "be",      "to",    "tv",    "us",      "uk",    "de",   "fr",
      "es",     "it",      "nl",    "pl",    "ru",      "br",    "in",   "au",
      "ca",     "jp",      "cn",    "info",  "biz",     "xyz",   "top",  "club",
      "online", "site",    "live",  "icu",   "shop",    "cc",    "buzz", "win",
      "vip",    "link",    "pw",    "cam",   "click",   "app",   "dev",  "blog",
      "store",  "tech",    "fun",   "space", "website", "art",   "ai",   "gg",
      "sh",     "so",      "la",    "ws",    "mobi",    "pro",   "name", "tk",
      "ml",     "ga",      "cf",    "gq",    "id",      "gy",    "su",   "cx",
      "im",     "vc",      "am",    "fm",    "ms",      "nu",    "one",  "today",
      "loan",   "bid",     "date",  "party", "stream",  "trade", "men",  "work",
      "rest",   "monster", "quest", "cyou",  "sbs",     "bond",  "cfd",  "lol",
      "mx",     "ar",      "cl",    "ch",    "se",      "no",    "dk",   "fi",
      "ie",     "pt",      "gr",    "tr",    "ua",      "za",    "ng",   "ke",
      "kr",     "tw",      "hk",    "sg",    "nz",      "edu",   "gov"};
  for (size_t i = 0; i < sizeof tlds / sizeof tlds[0]; i++)
    if (strlen(tlds[i]) == n && memcmp(tlds[i], s, n) == 0) return true;
  return false;
}

static bool word_tld(const char *s, size_t n) {
  static const char *const w[] = {
      "at",  "be",  "to",   "in",  "so",  "it",    "me",   "us",    "no",   "am",   "id",
      "co",  "la",  "ms",   "nu",  "one", "today", "date", "party", "work", "rest", "men",
      "fun", "art", "name", "lol", "win", "live",  "link", "shop",  "club"};
  for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
    if (strlen(w[i]) == n && memcmp(w[i], s, n) == 0) return true;
  return false;
}

static bool url_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '/' || c == '?' || c == '=' || c == '&' || c == '_' || c == '%' ||
         c == '#' || c == ':' || c == '~' || c == '+';
}

static bool alpha(char c) { return c >= 'a' && c <= 'z'; }
static bool alnum(char c) { return alpha(c) || (c >= '0' && c <= '9'); }

/* Words of >= 3 letters in s[0..n) (split at anything else) as tokens. */
static void url_words(tokenizer *t, const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && alpha(s[j])) j++;
    if (j - i >= 3) emit(t, "w:", s + i, j - i);
    i = j + 1;
  }
}

/* If the piece lo[0..n) (lower-case, orig keeps the case) is a link, emits
 * its tokens and returns true. */
static bool url(tokenizer *t, const char *lo, const char *orig, size_t n,
                bool dot_trick) {
  size_t i = 0;
  while (i < n && (lo[i] == '(' || lo[i] == '"' || lo[i] == '\'' || lo[i] == '<')) i++;
  while (n > i &&
         (lo[n - 1] == '.' || lo[n - 1] == ',' || lo[n - 1] == '!' || lo[n - 1] == '?' ||
          lo[n - 1] == ')' || lo[n - 1] == ';' || lo[n - 1] == ':' || lo[n - 1] == '"' ||
          lo[n - 1] == '\'' || lo[n - 1] == '>'))
    n--;
  bool scheme = false, www = false;
  if (n - i > 7 && memcmp(lo + i, "http://", 7) == 0) {
    i += 7;
    scheme = true;
  } else if (n - i > 8 && memcmp(lo + i, "https://", 8) == 0) {
    i += 8;
    scheme = true;
  }
  if (n - i > 4 && memcmp(lo + i, "www.", 4) == 0) {
    i += 4;
    www = true;
  }
  size_t h = i;
  while (h < n && (alnum(lo[h]) || lo[h] == '.' || lo[h] == '-')) h++;
  /* host lo[i..h): labels separated by single dots, a letters-only TLD */
  if (h == i || lo[i] == '.' || lo[h - 1] == '.') return false;
  size_t dot = h;
  for (size_t k = i; k + 1 < h; k++)
    if (lo[k] == '.' && lo[k + 1] == '.') return false;
  for (size_t k = h; k > i; k--)
    if (lo[k - 1] == '.') {
      dot = k - 1;
      break;
    }
  if (dot == h) return false;
  size_t tl = h - dot - 1;
  if (tl < 2 || tl > 12) return false;
  for (size_t k = dot + 1; k < h; k++)
    if (!alpha(lo[k])) return false;
  bool path = h < n && (lo[h] == '/' || lo[h] == '?');
  if (!scheme && !www) {
    if (!tld_known(lo + dot + 1, tl)) return false;
    if (word_tld(lo + dot + 1, tl) && !path) return false;
  }
  size_t end = h;
  while (end < n && url_char(lo[end])) end++;
  t->c->urls++;
  if (dot_trick) t->c->obfuscated++;
  spell_flush(t);
  emit_word(t, "<url>", 5);
  emit(t, "d:", lo + i, h - i);
  emit(t, "t:", lo + dot + 1, tl);
  url_words(t, lo + i, dot - i);
  /* the path: a lone short random code (shorteners), or words */
  if (path && lo[h] == '/') {
    size_t p = h + 1, q = p;
    while (q < end && alnum(lo[q])) q++;
    bool lone = q == end || (q + 1 == end && lo[q] == '/');
    if (lone && q - p >= 4 && q - p <= 12) {
      unsigned dig = 0, up = 0, low = 0;
      for (size_t k = p; k < q; k++) {
        if (orig[k] >= '0' && orig[k] <= '9')
          dig++;
        else if (orig[k] >= 'A' && orig[k] <= 'Z')
          up++;
        else
          low++;
      }
      if ((dig && (up || low)) || (up && low)) {
        t->c->code_urls++;
        return true;
      }
    }
    size_t qm = h;
    while (qm < end && lo[qm] != '?') qm++;
    url_words(t, lo + h, qm - h);
  }
  return true;
}

/* "@handle": a mention token and the words of the handle. */
static void mention(tokenizer *t, const char *lo, size_t n) {
  t->c->mentions++;
  spell_flush(t);
  emit_word(t, "@", 1);
  size_t e = 1;
  while (e < n && (alnum(lo[e]) || lo[e] == '_' || lo[e] == '.')) e++;
  while (e > 1 && lo[e - 1] == '.') e--;
  url_words(t, lo + 1, e - 1);
}

/* A piece of a chunk without emoji. */
static void piece(tokenizer *t, const unit *u, size_t n) {
  if (n == 0) return;
  /* ASCII views for links and handles; "[.]" and "(.)" read as "." */
  char lo[CHUNK_MAX + 1], orig[CHUNK_MAX + 1];
  size_t m = 0;
  bool dot_trick = false;
  char last = 0; /* lo[m - 1] */
  for (size_t i = 0; i < n; i++) {
    char a = (u[i].kind == CK_LETTER || u[i].kind == CK_DIGIT || u[i].kind == CK_PUNCT ||
              u[i].kind == CK_CURRENCY)
                 ? u[i].ascii
                 : 0;
    if (!a) a = '\x01';
    if (a == '.' && m > 0 && i + 1 < n && (last == '[' || last == '(') &&
        (u[i + 1].ascii == ']' || u[i + 1].ascii == ')')) {
      lo[m - 1] = orig[m - 1] = last = '.';
      i++;
      dot_trick = true;
      continue;
    }
    lo[m] = last = a;
    orig[m] = (u[i].flags & FL_UPPER) && a >= 'a' && a <= 'z' ? (char)(a - 32) : a;
    m++;
  }
  lo[m] = orig[m] = '\0';
  if (url(t, lo, orig, m, dot_trick)) return;
  if (lo[0] == '@' && m > 1 && (alnum(lo[1]) || lo[1] == '_')) {
    mention(t, lo, m);
    return;
  }
  /* words: letters, digits, other scripts; "$" and "@" between letters
   * are leet; apostrophes and digit separators inside words vanish */
  unit w[CHUNK_MAX];
  size_t wn = 0;
  bool money_before = false;
  for (size_t i = 0; i <= n; i++) {
    bool inside =
        i < n && i > 0 && i + 1 < n && is_word_unit(&u[i - 1]) && is_word_unit(&u[i + 1]);
    if (i < n && is_word_unit(&u[i])) {
      w[wn++] = u[i];
      continue;
    }
    if (inside && (u[i].ascii == '$' || u[i].ascii == '@') &&
        u[i - 1].kind == CK_LETTER) {
      w[wn++] = (unit){CK_LETTER, FL_NATIVE, u[i].ascii == '$' ? 's' : 'a', u[i].ascii};
      t->c->obfuscated++;
      continue;
    }
    if (inside && u[i].ascii == '\'') continue;
    if (inside && (u[i].ascii == ',' || u[i].ascii == '.') && u[i - 1].kind == CK_DIGIT &&
        u[i + 1].kind == CK_DIGIT)
      continue;
    bool cur_after = i < n && u[i].kind == CK_CURRENCY;
    if (wn) word(t, w, wn, money_before, cur_after);
    wn = 0;
    money_before = i < n && u[i].kind == CK_CURRENCY;
  }
}

static void chunk(tokenizer *t, const unit *u, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && u[i].kind != CK_EMOJI) continue;
    piece(t, u + start, i - start);
    if (i < n) {
      char hex[12];
      int k = snprintf(hex, sizeof hex, "%x", (unsigned)u[i].cp);
      t->c->emoji++;
      spell_flush(t);
      emit(t, "e:", hex, (size_t)k);
      t->prev_len = 0;
    }
    start = i + 1;
  }
}

/* Runs of >= 9 digits with only spaces, dashes, dots, brackets and "+"
 * between them: phone numbers. */
static uint32_t phones(const char *s, size_t n) {
  uint32_t found = 0, dig = 0;
  for (size_t i = 0; i <= n; i++) {
    char c = i < n ? s[i] : '\0';
    if (c >= '0' && c <= '9')
      dig++;
    else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+')
      continue;
    else {
      if (dig >= 9) found++;
      dig = 0;
    }
  }
  return found;
}

void spam_analyze(const char *text, size_t len, spam_token_fn fn, void *ctx,
                  spam_content *c) {
  memset(c, 0, sizeof *c);
  if (!text) len = 0;
  c->bytes = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
  size_t n = len < SPAM_SCAN_MAX ? len : SPAM_SCAN_MAX;
  const uint8_t *s = (const uint8_t *)(text ? text : "");
  tokenizer t;
  memset(&t, 0, sizeof t);
  t.fn = fn;
  t.ctx = ctx;
  t.c = c;
  unit u[CHUNK_MAX];
  size_t un = 0;
  bool prev_wordish = false;
  unsigned spaces = 0; /* consecutive white space */
  for (size_t i = 0; i < n;) {
    unit x = fold(next_cp(s, n, &i));
    if (x.kind == CK_LETTER && (x.flags & FL_NATIVE)) {
      c->letters++;
      if (x.flags & FL_UPPER) c->upper++;
    }
    if (x.kind == CK_DROP) continue;
    if (x.kind == CK_ZW) {
      if (prev_wordish) c->obfuscated++; /* inside a word: hiding it */
      continue;
    }
    prev_wordish = is_word_unit(&x);
    if (x.kind == CK_SPACE) {
      if (un) chunk(&t, u, un);
      un = 0;
      if (++spaces == 2) spell_flush_min(&t, 2);
      continue;
    }
    spaces = 0;
    u[un++] = x;
    if (un == CHUNK_MAX) {
      chunk(&t, u, un);
      un = 0;
    }
  }
  if (un) chunk(&t, u, un);
  spell_flush(&t);
  c->phone = phones(text ? text : "", n);
}

/* ---- features and verdict ------------------------------------------------- */

static double clampd(double x, double lo, double hi) {
  return x < lo ? lo : x > hi ? hi : x;
}
static double min_u(uint32_t a, uint32_t b) { return a < b ? a : b; }

void spam_features(const spam_input *in, const spam_content *c, double nb,
                   double x[SPAM_NFEAT]) {
  double days = in->account_age_s > 0 ? (double)in->account_age_s / 86400.0 : 0;
  bool follows = in->follows_author;
  uint32_t r1m = in->recent_1m, r1h = in->recent_1h, same = in->same_text_24h;
  if (in->is_author) { /* an established follower with no history */
    if (days < 365) days = 365;
    follows = true;
    r1m = r1h = same = 0;
  }
  bool link = c->urls > 0, young = days < 7;
  nb = clampd(nb, -20, 20);
  x[SPAM_F_BIAS] = 1;
  x[SPAM_F_NB] = nb / 5;
  x[SPAM_F_LINK] = link;
  x[SPAM_F_CODE_URL] = c->code_urls > 0;
  x[SPAM_F_MENTION] = min_u(c->mentions, 3) / 3;
  x[SPAM_F_OBFUSCATED] = min_u(c->obfuscated, 3) / 3;
  x[SPAM_F_MONEY_PHONE] = c->money + c->phone > 0;
  x[SPAM_F_EMOJI] = min_u(c->emoji, 6) / 6;
  x[SPAM_F_CAPS] = c->letters >= 6 ? (double)c->upper / c->letters : 0;
  x[SPAM_F_LENGTH] = log1p(c->bytes) / 6;
  x[SPAM_F_ELONGATED] = c->elongated > 0;
  x[SPAM_F_AGE] = log1p(days) / 8;
  x[SPAM_F_NEW] = young;
  x[SPAM_F_FOLLOWS] = follows;
  x[SPAM_F_RATE_1M] = log1p(r1m) / 3;
  x[SPAM_F_RATE_1H] = log1p(r1h) / 5;
  x[SPAM_F_REPEAT] = log1p(same) / 3;
  x[SPAM_F_LINK_NEW] = link && young;
  x[SPAM_F_LINK_STRANGER] = link && !follows;
  x[SPAM_F_REPEAT_STRANGER] = same > 0 && !follows;
  x[SPAM_F_NB_STRANGER] = follows || nb < 0 ? 0 : nb / 5;
  /* established: a follower for a month, commenting slowly, not repeating */
  bool trusted = follows && days >= 30 && r1h <= 5 && same == 0;
  x[SPAM_F_NB_TRUSTED] = trusted && nb > 0 ? nb / 5 : 0;
  /* thresholds past which no person comments: bots */
  x[SPAM_F_BURST] = r1m >= 5;
  x[SPAM_F_FLOOD] = r1h >= 30;
  x[SPAM_F_COPIES] = same >= 3;
}

typedef struct {
  double sum;
} nb_acc;

static int tok_cmp(const char *key, size_t len, const char *tok) {
  int c = strncmp(key, tok, len);
  if (c) return c;
  return tok[len] ? -1 : 0;
}

static void nb_token(void *ctx, const char *tok, size_t len) {
  size_t lo = 0, hi = SPAM_MODEL_NTOK;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = tok_cmp(tok, len, spam_model_tok[mid].tok);
    if (c == 0) {
      ((nb_acc *)ctx)->sum += spam_model_tok[mid].w;
      return;
    }
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
}

/* Feature groups named in reasons, in the order they are listed on ties. */
static const struct {
  const char *name;
  int feat[4];
} groups[] = {
    {"content", {SPAM_F_NB, SPAM_F_NB_STRANGER, SPAM_F_NB_TRUSTED, -1}},
    {"links", {SPAM_F_LINK, SPAM_F_CODE_URL, SPAM_F_LINK_NEW, SPAM_F_LINK_STRANGER}},
    {"obfuscation", {SPAM_F_OBFUSCATED, -1, -1, -1}},
    {"money/phone", {SPAM_F_MONEY_PHONE, -1, -1, -1}},
    {"mentions", {SPAM_F_MENTION, -1, -1, -1}},
    {"repeats", {SPAM_F_REPEAT, SPAM_F_REPEAT_STRANGER, SPAM_F_COPIES, -1}},
    {"rate", {SPAM_F_RATE_1M, SPAM_F_RATE_1H, SPAM_F_BURST, SPAM_F_FLOOD}},
    {"new account", {SPAM_F_AGE, SPAM_F_NEW, -1, -1}},
    {"not following", {SPAM_F_FOLLOWS, -1, -1, -1}},
    {"style", {SPAM_F_EMOJI, SPAM_F_CAPS, SPAM_F_ELONGATED, SPAM_F_LENGTH}},
};
#define NGROUPS (sizeof groups / sizeof groups[0])
#define REASON_MIN 0.5 /* log-odds a group must add to be named */

/* Names the groups that pushed the score up the most, relative to an
 * ordinary comment: a year-old follower, no history, neutral tokens, no
 * links, 40 bytes. */
static void explain(const double x[SPAM_NFEAT], char *out) {
  spam_content plain = {.bytes = 40};
  spam_input base = {.account_age_s = (int64_t)365 * 86400, .follows_author = true};
  double ref[SPAM_NFEAT], gain[NGROUPS];
  spam_features(&base, &plain, 0, ref);
  for (size_t g = 0; g < NGROUPS; g++) {
    gain[g] = 0;
    for (int k = 0; k < 4 && groups[g].feat[k] >= 0; k++) {
      int f = groups[g].feat[k];
      gain[g] += spam_model_w[f] * (x[f] - ref[f]);
    }
  }
  size_t n = 0;
  out[0] = '\0';
  for (int picked = 0; picked < 3; picked++) {
    size_t best = NGROUPS;
    for (size_t g = 0; g < NGROUPS; g++)
      if (gain[g] >= REASON_MIN && (best == NGROUPS || gain[g] > gain[best])) best = g;
    if (best == NGROUPS) break;
    int k =
        snprintf(out + n, SPAM_REASON_BYTES - n, "%s%s", n ? "+" : "", groups[best].name);
    if (k < 0 || (size_t)k >= SPAM_REASON_BYTES - n) break;
    n += (size_t)k;
    gain[best] = -1;
  }
  if (!n) snprintf(out, SPAM_REASON_BYTES, "overall score");
}

void spam_classify(const spam_input *in, spam_result *out) {
  nb_acc acc = {0};
  spam_content c;
  spam_analyze(in->text, in->text ? in->len : 0, nb_token, &acc, &c);
  double x[SPAM_NFEAT], z = 0;
  spam_features(in, &c, acc.sum, x);
  for (int f = 0; f < SPAM_NFEAT; f++) z += spam_model_w[f] * x[f];
  double p = 1 / (1 + exp(-clampd(z, -40, 40)));
  out->score = p;
  out->verdict = p >= SPAM_MODEL_T_SPAM   ? SPAM_SPAM
                 : p >= SPAM_MODEL_T_HELD ? SPAM_HELD
                                          : SPAM_HAM;
  if (out->verdict == SPAM_HAM)
    snprintf(out->reason, sizeof out->reason, "ok");
  else
    explain(x, out->reason);
}
