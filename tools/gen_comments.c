/* gen_comments: builds the labelled comment set for the spam filter
 * (src/server/spam.c, docs/spam-section.md). The set is synthetic: every
 * text is assembled here from the phrase lists and templates below, all
 * written for tessera; nothing is taken from real users or other corpora.
 *
 *   gen_comments [--seed N] [--train N] [--test N] [--out DIR] [--stats]
 *
 * Writes DIR/train.tsv and DIR/test.tsv (default datasets/comments, 6000 and
 * 4000 lines, seed 1), one comment per line:
 *
 *   label  account_age_days  follows_author  recent_1m  recent_1h
 *   same_text_24h  text
 *
 * label is "ham" or "spam". The output depends only on the arguments.
 * --stats prints the comments per family and split to stderr.
 *
 * Generalisation, not memorisation: the test split has comment families,
 * templates and vocabulary the training split never sees.
 *  - Families are marked train-only, test-only or both (FAMILIES below).
 *  - In a family used by both splits, every fourth template is test-only.
 *  - Every split-aware word list (adjectives, places, coins, domains, TLDs,
 *    shorteners, prizes, languages, ...) is cut in three by index: one
 *    third both splits, one third train only, one third test only.
 *  - Obfuscations differ too: train has leet, spaced letters, zero-width
 *    characters, Cyrillic look-alikes and bold maths letters; test adds
 *    dotted letters, fullwidth, sans-serif/script maths letters and
 *    circled letters, and "[.]" in domains.
 * The training split is in time order, with campaigns and topics that come
 * and go ("Time" below), for cross-validation on blocks of time.
 * Behaviour columns come from per-family distributions that overlap: some
 * spam comes from old, slow accounts that follow the author, and some ham
 * from accounts a few days old commenting in bursts. Tabs and newlines in
 * a text become spaces, and every text is checked to be valid UTF-8 before
 * it is written. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MAX 1024

/* ---- random numbers (xoshiro256**, seeded by splitmix64) ---------------- */

static uint64_t rng_s[4];

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed) {
  for (int i = 0; i < 4; i++) rng_s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
  uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
  rng_s[2] ^= rng_s[0];
  rng_s[3] ^= rng_s[1];
  rng_s[1] ^= rng_s[2];
  rng_s[0] ^= rng_s[3];
  rng_s[2] ^= t;
  rng_s[3] = rotl(rng_s[3], 45);
  return r;
}

static double unif(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static bool chance(double p) { return unif() < p; }
static size_t below(size_t n) { return (size_t)(unif() * (double)n); }

static double gauss(void) {
  double u = unif(), v = unif();
  if (u < 1e-300) u = 1e-300;
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static unsigned poisson(double mean) {
  if (mean <= 0) return 0;
  if (mean > 40) {
    double x = mean + sqrt(mean) * gauss();
    return x < 0 ? 0 : (unsigned)(x + 0.5);
  }
  double l = exp(-mean), p = 1;
  unsigned k = 0;
  do {
    k++;
    p *= unif();
  } while (p > l);
  return k - 1;
}

/* ---- output buffer -------------------------------------------------------- */

typedef struct {
  char b[OUT_MAX];
  size_t n;
} sbuf;

static void put(sbuf *s, const char *p, size_t n) {
  if (s->n >= OUT_MAX - 1) return;
  if (n > OUT_MAX - 1 - s->n) n = OUT_MAX - 1 - s->n;
  memcpy(s->b + s->n, p, n);
  s->n += n;
  s->b[s->n] = '\0';
}
static void puts_(sbuf *s, const char *p) { put(s, p, strlen(p)); }

static void put_cp(sbuf *s, uint32_t c) {
  char u[4];
  size_t n;
  if (c < 0x80) {
    u[0] = (char)c;
    n = 1;
  } else if (c < 0x800) {
    u[0] = (char)(0xC0 | (c >> 6));
    u[1] = (char)(0x80 | (c & 0x3F));
    n = 2;
  } else if (c < 0x10000) {
    u[0] = (char)(0xE0 | (c >> 12));
    u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    u[2] = (char)(0x80 | (c & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (c >> 18));
    u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    u[3] = (char)(0x80 | (c & 0x3F));
    n = 4;
  }
  put(s, u, n);
}

/* ---- splits ----------------------------------------------------------------- */

enum { SPLIT_TRAIN = 1, SPLIT_TEST = 2, SPLIT_BOTH = 3 };
static int cur_split; /* SPLIT_TRAIN or SPLIT_TEST while generating */

/* Index i of a split-aware list is visible in the current split: a third
 * each for both / train only / test only. */
static bool item_visible(size_t i) {
  switch (i % 3) {
  case 0: return true;
  case 1: return cur_split == SPLIT_TRAIN;
  default: return cur_split == SPLIT_TEST;
  }
}

/* ---- word lists --------------------------------------------------------------- */

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const ADJ[] = {
    "gorgeous", "stunning",  "beautiful", "amazing",      "lovely",    "incredible",
    "adorable", "wonderful", "fantastic", "perfect",      "awesome",   "cute",
    "dreamy",   "cozy",      "delicious", "epic",         "magical",   "brilliant",
    "sweet",    "fabulous",  "charming",  "unreal",       "wholesome", "elegant",
    "vibrant",  "peaceful",  "classy",    "breathtaking", "majestic",  "precious",
    "spotless", "striking",  "serene",    "heavenly",     "divine",    "superb"};
static const char *const NOUN[] = {
    "photo",    "shot",     "view",    "pic",     "outfit", "dress",   "sunset",
    "place",    "cake",     "dog",     "cat",     "puppy",  "garden",  "kitchen",
    "painting", "drawing",  "haircut", "smile",   "family", "wedding", "trip",
    "beach",    "mountain", "bike",    "room",    "setup",  "design",  "lighting",
    "colors",   "bread",    "quilt",   "balcony", "shelf",  "pottery", "mural",
    "harbour",  "canyon",   "jacket"};
static const char *const PLACE[] = {
    "lisbon",    "kyoto",      "the lake",   "barcelona", "the old town", "oaxaca",
    "bergen",    "the coast",  "cape town",  "hanoi",     "vancouver",    "the alps",
    "marrakech", "tasmania",   "the valley", "edinburgh", "valparaiso",   "istanbul",
    "seoul",     "the island", "zanzibar",   "porto",     "reykjavik",    "tbilisi",
    "cusco",     "kraków",     "dubrovnik",  "penang",    "the fjords",   "sevilla"};
static const char *const NAME[] = {
    "mia",  "sam",  "leo",  "ana",    "jonas", "priya",  "tom",   "kemi",  "lucas",
    "sara", "omar", "yuki", "elena",  "noah",  "fatima", "ben",   "chloe", "diego",
    "ines", "raj",  "zoe",  "ivan",   "amara", "felix",  "lena",  "marco", "aisha",
    "theo", "nora", "kai",  "jasmin", "tariq", "mei",    "oskar", "ruth",  "hugo"};
static const char *const HANDLE_WORD[] = {
    "travels", "bakes", "photo",  "runs",  "art",   "daily",  "life",   "eats",
    "draws",   "lens",  "garden", "music", "notes", "studio", "climbs", "reads",
    "films",   "knits", "rides",  "cooks", "walks", "sketch", "brews",  "plants"};
static const char *const EMO[] = {
    "😍", "🔥", "❤️", "👏",    "😂",    "🥰", "💯",    "🙌", "✨",      "😊", "🤩",
    "💕", "👌", "😮",      "🥲", "🤣", "😭",    "💪",    "🌸", "☀️", "🎉", "👍",
    "💙", "😎", "🌊",      "🍰",    "🐶",    "🌿",    "🫶", "😋", "🤍",   "🌈"};
static const char *const EMO_S[] = {
    "💰", "🤑",   "💸", "🎁",    "🔞", "💋", "😘", "👉", "⬇️", "✅", "🚀", "📈",
    "💎", "‼️", "📩", "🤝", "🏆", "⚡", "🍑", "💦", "👇",      "🎰", "🔗", "💵"};
static const char *const COIN[] = {
    "bitcoin", "ethereum", "dogecoin", "solana",  "BTC",       "ETH",     "USDT",
    "XRP",     "litecoin", "cardano",  "shiba",   "BNB",       "tron",    "polkadot",
    "avax",    "pepe",     "monero",   "stellar", "chainlink", "toncoin", "kaspa"};
static const char *const PRIZE[] = {"iPhone 15",      "PS5",           "$500 gift card",
                                    "Samsung Galaxy", "AirPods",       "MacBook",
                                    "Amazon voucher", "free vacation", "Tesla",
                                    "smartwatch",     "gaming laptop", "cash prize",
                                    "Visa gift card", "drone",         "iPad",
                                    "Rolex",          "Xbox",          "cruise for two",
                                    "$1000 voucher",  "e-bike"};
static const char *const SPAMWORD[] = {
    "claim",  "reward", "bonus",  "prize",   "gift",  "free",   "win",  "promo",
    "lucky",  "crypto", "coin",   "airdrop", "earn",  "cash",   "deal", "vip",
    "secure", "verify", "login",  "support", "hot",   "date",   "meet", "chat",
    "profit", "invest", "wallet", "payout",  "offer", "winner", "spin", "bet"};
static const char *const STLD[] = {"xyz",  "top", "click", "club", "online", "site",
                                   "live", "icu", "shop",  "info", "biz",    "cc",
                                   "buzz", "win", "vip",   "link", "pw",     "cam"};
static const char *const HAMWORD[] = {
    "trail", "kitchen", "notes", "garden",  "studio", "journal", "craft",  "city",
    "parks", "bakery",  "lens",  "stories", "maps",   "field",   "river",  "paper",
    "knit",  "coffee",  "club",  "works",   "press",  "market",  "school", "library"};
static const char *const HTLD[] = {"com",   "org", "net", "blog", "io",  "dev",
                                   "co.uk", "de",  "fr",  "me",   "app", "es"};
static const char *const SHORT[] = {"bit.ly",  "tinyurl.com", "cutt.ly",    "rb.gy",
                                    "is.gd",   "t.ly",        "ow.ly",      "shorturl.at",
                                    "tiny.cc", "s.id",        "rebrand.ly", "v.gd"};
static const char *const SPAMHANDLE_WORD[] = {
    "crypto",  "fx",    "trader", "invest", "mentor", "profit", "wealth", "coach",
    "bitcoin", "forex", "money",  "rich",   "promo",  "growth", "babe",   "model",
    "hot",     "shop",  "deals",  "brand",  "collab", "boost",  "viral",  "fame"};

/* Everyday chatter: the ordinary words real comments are full of. */
static const char *const SUBJ[] = {
    "i",          "we",           "my mom",           "my kids",
    "my partner", "our team",     "the whole family", "my friends",
    "my sister",  "my brother",   "my dad",           "my flatmate",
    "grandpa",    "the kids",     "my best friend",   "our neighbours",
    "my aunt",    "my colleagues"};
static const char *const VPAST[] = {
    "went to",    "tried",       "visited", "made",     "saw",          "loved",
    "missed",     "booked",      "found",   "watched",  "baked",        "painted",
    "ordered",    "walked past", "cooked",  "fixed",    "planted",      "rebuilt",
    "drove past", "queued for",  "tasted",  "sketched", "photographed", "cleaned"};
static const char *const VBASE[] = {
    "try",   "visit", "see",    "make",  "book",  "watch", "bake",  "cook",
    "plant", "paint", "join",   "order", "find",  "build", "taste", "explore",
    "copy",  "learn", "borrow", "share", "frame", "knit",  "hike",  "sew"};
static const char *const OBJ[] = {
    "this place",     "the same thing", "one of these",  "something similar",
    "your recipe",    "the museum",     "that cafe",     "the show",
    "the market",     "this trail",     "the new menu",  "that bridge",
    "the exhibition", "the festival",   "this dish",     "a tiny version",
    "the old mill",   "that bookshop",  "the night bus", "the sea pool",
    "the rooftop",    "the farm shop",  "the ferry",     "the lantern walk"};
static const char *const TIME[] = {
    "last summer",      "yesterday",    "on sunday",        "two years ago",
    "for my birthday",  "after work",   "this morning",     "during the holidays",
    "last night",       "in april",     "back in 2019",     "over the weekend",
    "on our honeymoon", "at christmas", "last month",       "on friday",
    "after school",     "at easter",    "before the storm", "in the rain"};
static const char *const FUTURE[] = {
    "next week",  "this weekend", "tomorrow",    "in the spring", "next summer",
    "soon",       "on monday",    "after exams", "in june",       "for new year",
    "next time",  "one day",      "on holiday",  "in august",     "tonight",
    "next month", "someday",      "in october"};
static const char *const OUTCOME[] = {"loved it",           "it was packed",
                                      "it was closed",      "we got lost",
                                      "it rained",          "the kids cried",
                                      "it was worth it",    "we stayed for hours",
                                      "it took forever",    "everyone was lovely",
                                      "we ran out of time", "it was so calm",
                                      "nobody believed us", "i burnt it",
                                      "we laughed so much", "it was freezing",
                                      "we'll go again",     "we met the owner",
                                      "it sold out",        "we missed the train"};
static const char *const OPINION[] = {"honestly so good",
                                      "not my thing",
                                      "a bit overrated",
                                      "totally worth it",
                                      "better than expected",
                                      "so relaxing",
                                      "really pricey",
                                      "super friendly",
                                      "way too crowded",
                                      "perfect for kids",
                                      "a hidden gem",
                                      "kind of chaotic",
                                      "cheaper than i thought",
                                      "a bit far",
                                      "always busy",
                                      "nicer in person",
                                      "very quiet",
                                      "so underrated"};
static const char *const DAY[] = {"mondays",   "tuesdays",      "weekends",
                                  "sundays",   "bank holidays", "fridays",
                                  "saturdays", "evenings",      "wednesdays"};

/* Languages of common short ham comments; split by language. */
static const char *const LANG_ES[] = {
    "qué bonito", "me encanta",     "qué lindo",    "increíble",      "felicidades",
    "precioso",   "qué rico se ve", "hermosa foto", "te quedó genial"};
static const char *const LANG_FR[] = {
    "trop beau",         "magnifique", "j'adore",   "superbe photo", "félicitations",
    "c'est trop mignon", "quelle vue", "trop bien", "ça donne envie"};
static const char *const LANG_DE[] = {
    "wunderschön", "richtig toll",          "sieht lecker aus", "herzlichen glückwunsch",
    "mega schön",  "wie cool ist das denn", "traumhaft",        "einfach klasse"};
static const char *const LANG_PT[] = {"que lindo",  "maravilhoso",    "amei",
                                      "parabéns",   "que foto linda", "arrasou",
                                      "que delícia"};
static const char *const LANG_IT[] = {"bellissimo",   "che bello",      "stupenda",
                                      "complimenti",  "che meraviglia", "buonissimo",
                                      "troppo carino"};
static const char *const LANG_NL[] = {"prachtig", "heel mooi",  "gefeliciteerd",
                                      "wat leuk", "super gaaf", "echt genieten"};
static const char *const LANG_ID[] = {"keren banget", "bagus sekali",  "mantap",
                                      "selamat ya",   "cantik banget", "lucu banget"};
static const char *const LANG_TR[] = {"çok güzel", "harika",          "tebrikler",
                                      "muhteşem",  "ellerine sağlık", "çok tatlı"};
static const char *const LANG_PL[] = {"pięknie", "super zdjęcie", "gratulacje",
                                      "cudowne", "ale fajnie",    "przepiękne"};
static const char *const LANG_RU[] = {"круто", "очень красиво", "поздравляю", "класс",
                                      "какая красота"};
static const char *const LANG_SW[] = {"hongera", "safi sana", "nzuri sana",
                                      "asante sana"};

typedef struct {
  const char *const *items;
  size_t n;
  int splits;
} lang;
static const lang LANGS[] = {
    {LANG_ES, N(LANG_ES), SPLIT_BOTH},  {LANG_FR, N(LANG_FR), SPLIT_BOTH},
    {LANG_DE, N(LANG_DE), SPLIT_BOTH},  {LANG_RU, N(LANG_RU), SPLIT_BOTH},
    {LANG_PT, N(LANG_PT), SPLIT_TRAIN}, {LANG_IT, N(LANG_IT), SPLIT_TRAIN},
    {LANG_NL, N(LANG_NL), SPLIT_TRAIN}, {LANG_ID, N(LANG_ID), SPLIT_TEST},
    {LANG_TR, N(LANG_TR), SPLIT_TEST},  {LANG_PL, N(LANG_PL), SPLIT_TEST},
    {LANG_SW, N(LANG_SW), SPLIT_TEST}};

/* ---- slot generators ---------------------------------------------------------- */

static void expand(sbuf *s, const char *t, size_t n);
static void expand_str(sbuf *s, const char *t) { expand(s, t, strlen(t)); }

/* A visible item of a split-aware list. */
static const char *pick(const char *const *items, size_t n) {
  for (;;) {
    size_t i = below(n);
    if (item_visible(i)) return items[i];
  }
}

static void digits(sbuf *s, int k) {
  for (int i = 0; i < k; i++) {
    char c = (char)('0' + below(10));
    put(s, &c, 1);
  }
}

static void code(sbuf *s, int k) {
  static const char al[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  for (int i = 0; i < k; i++) put(s, &al[below(sizeof al - 1)], 1);
}

static void gen_handle(sbuf *s) {
  static const char *const seps[] = {"", "_", ".", "__"};
  puts_(s, pick(NAME, N(NAME)));
  switch (below(4)) {
  case 0: digits(s, 2); break;
  case 1:
    puts_(s, seps[below(N(seps))]);
    puts_(s, pick(HANDLE_WORD, N(HANDLE_WORD)));
    break;
  case 2:
    puts_(s, seps[below(N(seps))]);
    puts_(s, pick(NAME, N(NAME)));
    break;
  default: break;
  }
}

static void gen_spam_handle(sbuf *s) {
  static const char *const seps[] = {"", "_", ".", "__"};
  switch (below(3)) {
  case 0:
    puts_(s, pick(SPAMHANDLE_WORD, N(SPAMHANDLE_WORD)));
    puts_(s, seps[below(N(seps))]);
    puts_(s, pick(NAME, N(NAME)));
    if (chance(0.6)) digits(s, 1 + (int)below(4));
    break;
  case 1:
    puts_(s, pick(NAME, N(NAME)));
    puts_(s, seps[below(N(seps))]);
    puts_(s, pick(SPAMHANDLE_WORD, N(SPAMHANDLE_WORD)));
    puts_(s, chance(0.5) ? "_official" : "");
    break;
  default:
    puts_(s, pick(SPAMHANDLE_WORD, N(SPAMHANDLE_WORD)));
    puts_(s, seps[below(N(seps))]);
    puts_(s, pick(SPAMHANDLE_WORD, N(SPAMHANDLE_WORD)));
    digits(s, 2);
    break;
  }
}

static void gen_spam_url(sbuf *s) {
  if (chance(0.4))
    puts_(s, chance(0.7) ? "https://" : "http://");
  else if (chance(0.1))
    puts_(s, "www.");
  puts_(s, pick(SPAMWORD, N(SPAMWORD)));
  switch (below(3)) {
  case 0:
    puts_(s, "-");
    puts_(s, pick(SPAMWORD, N(SPAMWORD)));
    break;
  case 1: puts_(s, pick(SPAMWORD, N(SPAMWORD))); break;
  default: digits(s, 2 + (int)below(3)); break;
  }
  /* "[.]" defeats naive link detection: a test-only trick. */
  puts_(s, cur_split == SPLIT_TEST && chance(0.15) ? "[.]" : ".");
  puts_(s, chance(0.85) ? pick(STLD, N(STLD)) : "com");
  if (chance(0.5)) {
    puts_(s, "/");
    if (chance(0.5))
      code(s, 4 + (int)below(6));
    else
      puts_(s, pick(SPAMWORD, N(SPAMWORD)));
  }
}

static void gen_short_url(sbuf *s) {
  if (chance(0.4)) puts_(s, "https://");
  puts_(s, pick(SHORT, N(SHORT)));
  puts_(s, "/");
  code(s, 5 + (int)below(4));
}

static void gen_ham_url(sbuf *s) {
  switch (below(7)) {
  case 0:
    puts_(s, "https://youtu.be/");
    code(s, 11);
    return;
  case 1:
    puts_(s, chance(0.5) ? "https://www.youtube.com/watch?v=" : "youtube.com/watch?v=");
    code(s, 11);
    return;
  case 2:
    puts_(s, "https://en.wikipedia.org/wiki/");
    expand_str(s, "{Sourdough|Lighthouse|Fjord|Kintsugi|Cyanotype|Terrace_farming|"
                  "Mangrove|Tile_roof|Espresso|Night_market}");
    return;
  default: break;
  }
  if (chance(0.6)) puts_(s, "https://");
  if (chance(0.3)) puts_(s, "www.");
  puts_(s, chance(0.5) ? pick(NAME, N(NAME)) : pick(HAMWORD, N(HAMWORD)));
  puts_(s, pick(HAMWORD, N(HAMWORD)));
  puts_(s, ".");
  puts_(s, pick(HTLD, N(HTLD)));
  if (chance(0.7)) {
    puts_(s, "/");
    expand_str(s, "{recipes|2023/05|2024/03|events|guides|posts|blog|menu|routes|shop/"
                  "prints}/{lemon-cake|trail-guide|spring-fair|night-walk|how-to-start|"
                  "first-loaf|opening-hours|map|tickets|summer-schedule}");
  }
}

static void gen_money(sbuf *s) {
  switch (below(6)) {
  case 0:
    puts_(s, "$");
    digits(s, 1);
    digits(s, (int)below(3));
    break;
  case 1:
    puts_(s, "$");
    digits(s, 1 + (int)below(2));
    puts_(s, ",000");
    break;
  case 2:
    digits(s, 1 + (int)below(2));
    puts_(s, "k");
    break;
  case 3:
    puts_(s, "€");
    digits(s, 3);
    break;
  case 4:
    digits(s, 3 + (int)below(2));
    puts_(s, " USD");
    break;
  default:
    digits(s, 3);
    puts_(s, "$");
    break;
  }
}

static void gen_phone(sbuf *s) {
  switch (below(4)) {
  case 0:
    puts_(s, "+1 ");
    digits(s, 3);
    puts_(s, " ");
    digits(s, 3);
    puts_(s, " ");
    digits(s, 4);
    break;
  case 1:
    puts_(s, "+44 7");
    digits(s, 3);
    puts_(s, " ");
    digits(s, 6);
    break;
  case 2:
    puts_(s, "+234 ");
    digits(s, 3);
    puts_(s, "-");
    digits(s, 3);
    puts_(s, "-");
    digits(s, 4);
    break;
  default:
    puts_(s, "+1 (");
    digits(s, 3);
    puts_(s, ") ");
    digits(s, 3);
    puts_(s, "-");
    digits(s, 4);
    break;
  }
}

static void gen_lang(sbuf *s) {
  for (;;) {
    const lang *l = &LANGS[below(N(LANGS))];
    if (l->splits & cur_split) {
      puts_(s, l->items[below(l->n)]);
      return;
    }
  }
}

static void gen_amount(sbuf *s) {
  static const char *const a[] = {"0.1", "0.5", "1", "0.05", "2", "0.25", "5", "10"};
  puts_(s, a[below(N(a))]);
}

static void gen_punct(sbuf *s) {
  static const char *const p[] = {"", "", "!", "!!", "!!!", ".", " ❤️", "!!!!", "."};
  puts_(s, p[below(N(p))]);
}

static void gen_emo(sbuf *s) { puts_(s, pick(EMO, N(EMO))); }
static void gen_emo_s(sbuf *s) { puts_(s, pick(EMO_S, N(EMO_S))); }

typedef struct {
  const char *name;
  const char *const *items; /* split-aware list, or NULL for fn */
  size_t n;
  void (*fn)(sbuf *);
} slot;

static const slot SLOTS[] = {
    {"ADJ", ADJ, N(ADJ), NULL},
    {"NOUN", NOUN, N(NOUN), NULL},
    {"PLACE", PLACE, N(PLACE), NULL},
    {"NAME", NAME, N(NAME), NULL},
    {"COIN", COIN, N(COIN), NULL},
    {"PRIZE", PRIZE, N(PRIZE), NULL},
    {"SUBJ", SUBJ, N(SUBJ), NULL},
    {"VPAST", VPAST, N(VPAST), NULL},
    {"VBASE", VBASE, N(VBASE), NULL},
    {"OBJ", OBJ, N(OBJ), NULL},
    {"TIME", TIME, N(TIME), NULL},
    {"FUTURE", FUTURE, N(FUTURE), NULL},
    {"OUTCOME", OUTCOME, N(OUTCOME), NULL},
    {"OPINION", OPINION, N(OPINION), NULL},
    {"DAY", DAY, N(DAY), NULL},
    {"EMO", NULL, 0, gen_emo},
    {"EMO_S", NULL, 0, gen_emo_s},
    {"HANDLE", NULL, 0, gen_handle},
    {"SHANDLE", NULL, 0, gen_spam_handle},
    {"SPAMURL", NULL, 0, gen_spam_url},
    {"SHORTURL", NULL, 0, gen_short_url},
    {"HAMURL", NULL, 0, gen_ham_url},
    {"MONEY", NULL, 0, gen_money},
    {"PHONE", NULL, 0, gen_phone},
    {"LANG", NULL, 0, gen_lang},
    {"AMOUNT", NULL, 0, gen_amount},
    {"PUNCT", NULL, 0, gen_punct},
};

/* ---- templates ----------------------------------------------------------------
 * "{a|b|c}" picks one alternative (may be empty), "{?x}" (no "|") is x
 * half the time, "{NAME}" fills a slot from SLOTS; braces nest. */

static size_t match_brace(const char *t, size_t n, size_t i) {
  int depth = 0;
  for (; i < n; i++) {
    if (t[i] == '{')
      depth++;
    else if (t[i] == '}' && --depth == 0)
      return i;
  }
  fprintf(stderr, "gen_comments: unbalanced template %.*s\n", (int)n, t);
  exit(2);
}

static void expand_group(sbuf *s, const char *c, size_t n) {
  size_t alts[48], nalt = 0;
  int depth = 0;
  alts[nalt++] = 0;
  for (size_t i = 0; i < n; i++) {
    if (c[i] == '{')
      depth++;
    else if (c[i] == '}')
      depth--;
    else if (c[i] == '|' && depth == 0 && nalt < N(alts))
      alts[nalt++] = i + 1;
  }
  if (nalt > 1) {
    size_t k = below(nalt);
    size_t end = k + 1 < nalt ? alts[k + 1] - 1 : n;
    expand(s, c + alts[k], end - alts[k]);
    return;
  }
  if (n > 0 && c[0] == '?') {
    if (chance(0.5)) expand(s, c + 1, n - 1);
    return;
  }
  for (size_t k = 0; k < N(SLOTS); k++) {
    if (strlen(SLOTS[k].name) == n && memcmp(SLOTS[k].name, c, n) == 0) {
      if (SLOTS[k].fn)
        SLOTS[k].fn(s);
      else
        puts_(s, pick(SLOTS[k].items, SLOTS[k].n));
      return;
    }
  }
  expand(s, c, n); /* a lone alternative: plain text */
}

static void expand(sbuf *s, const char *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (t[i] == '{') {
      size_t j = match_brace(t, n, i);
      expand_group(s, t + i + 1, j - i - 1);
      i = j;
    } else {
      put(s, &t[i], 1);
    }
  }
}

/* ---- families ------------------------------------------------------------------ */

/* Behaviour of a family's commenters. */
typedef struct {
  double p_new;   /* account younger than 7 days */
  double age_med; /* otherwise lognormal: median days, sigma */
  double age_sig;
  double p_follow; /* follows the post's author */
  double rate_1h;  /* mean earlier comments in the hour (gamma-ish spread) */
  double p_burst;  /* a burst: many in the last minute */
  double p_repeat; /* has posted this text before in 24 h */
  double rep_mean;
} behav;

static const behav B_HAM = {0.05, 600, 1.1, 0.72, 1.2, 0.03, 0.02, 1.5};
static const behav B_HAM_FRIEND = {0.03, 700, 1.0, 0.9, 1.8, 0.08, 0.02, 1.2};
static const behav B_HAM_SHORT = {0.06, 500, 1.2, 0.7, 2.0, 0.05, 0.25, 2.0};
static const behav B_HAM_FAN = {0.04, 400, 1.2, 0.93, 1.0, 0.02, 0.02, 1.2};
static const behav B_HAM_LINK = {0.05, 800, 1.0, 0.6, 0.8, 0.02, 0.05, 1.5};
static const behav B_HAM_INTL = {0.06, 500, 1.2, 0.6, 1.5, 0.04, 0.08, 1.5};
static const behav B_SPAM_BULK = {0.75, 25, 1.3, 0.08, 25, 0.45, 0.65, 6};
static const behav B_SPAM_F4F = {0.7, 20, 1.3, 0.35, 30, 0.5, 0.6, 5};
static const behav B_SPAM_SLOW = {0.35, 250, 1.4, 0.2, 6, 0.15, 0.3, 3};
static const behav B_SPAM_BOT = {0.6, 30, 1.5, 0.25, 40, 0.55, 0.8, 9};
static const behav B_SPAM_DM = {0.5, 60, 1.5, 0.3, 14, 0.3, 0.45, 4};

/* Stand-ins so a spammer can look like an ordinary user, and vice versa. */
static const behav B_STEALTH = {0.02, 900, 1.0, 0.45, 0.8, 0.0, 0.03, 1};
static const behav B_NEWBIE = {1.0, 3, 1, 0.45, 6, 0.25, 0.08, 2};

#define T(...) ((const char *const[]){__VA_ARGS__})
#define TN(...) (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define TPL(...) T(__VA_ARGS__), TN(__VA_ARGS__)

typedef struct {
  const char *name;
  bool spam;
  int splits;
  double weight;
  const behav *b;
  const char *const *tpl;
  size_t ntpl;
} family;

static const family FAMILIES[] = {
    /* ---- ham, both splits ---- */
    {"compliment", false, SPLIT_BOTH, 14, &B_HAM,
     TPL("{this is|that's|what a|such a|so} {ADJ} {NOUN}{PUNCT}",
         "{ADJ}{PUNCT}{? {EMO}{EMO}}",
         "{love|loving|obsessed with} this {NOUN}{PUNCT}{? {EMO}}",
         "the {NOUN} is {ADJ}{PUNCT}", "{wow|omg|oh my|damn|whoa}{,|!|} {ADJ}{PUNCT}",
         "you look {ADJ} in this {NOUN}{PUNCT}",
         "{absolutely|genuinely|honestly|truly} {ADJ}{PUNCT}",
         "{your|ur} {NOUN}s are always so {ADJ}",
         "this made my {day|morning|week}{PUNCT}{? {EMO}}", "{ADJ} {NOUN} {NAME}{PUNCT}",
         "i need this {NOUN} in my life",
         "{the colors|the lighting|the composition|the vibe} {is|are} on point{? {EMO}}",
         "{can't stop|cant stop} looking at this{PUNCT}", "{NAME} this {NOUN} is {ADJ}",
         "{ADJ} as always{PUNCT}", "{this|that} {NOUN} tho{? {EMO}}")},
    {"question", false, SPLIT_BOTH, 8, &B_HAM,
     TPL("where {is this|was this taken|did you stay}?",
         "what {camera|lens|phone} did you use for this?", "{is|was} this in {PLACE}?",
         "{recipe|link to the recipe|what flour did you use} please?",
         "how long did {this|the {NOUN}} take you?", "where did you get the {NOUN}?",
         "{any|got any} tips for a first timer{ in {PLACE}|}?",
         "is the {NOUN} {new|vintage|handmade}?", "what's the name of the song in this?",
         "how old is {your dog|the puppy|she|he} now?",
         "when are you coming back to {PLACE}?",
         "did you edit this or is it straight out of the camera?",
         "{how much|how far} was the {hike|walk|drive} from {PLACE}?",
         "which {month|season} did you go?")},
    {"banter", false, SPLIT_BOTH, 9, &B_HAM_FRIEND,
     TPL("@{HANDLE} this is {literally|so|basically} you{ lol| 😂|}",
         "@{HANDLE} {we need to go here|adding this to our list|remember this place?}",
         "lol {NAME} you {wish|could never|would}",
         "@{HANDLE} {told you|i told you so|see i was right}{ haha|}",
         "{haha|lmao|lol} the {dog|cat|guy} in the back",
         "{NAME} stop showing off{ 😂| lol|}",
         "@{HANDLE} @{HANDLE} {look at this|saturday?|this weekend??}",
         "bro {really|actually} did it{ 😂😂| lol|}",
         "not you posting this after {last night|what happened on friday|yesterday}{ 💀|}",
         "@{HANDLE} you owe me {a coffee|lunch|5 bucks} for this",
         "@{HANDLE} {is that|isn't that} {your|our} {NOUN}??",
         "{NAME} {you|u} {promised|said} you'd {bring|save} me {some|one}{ 😤|}")},
    {"emoji", false, SPLIT_BOTH, 6, &B_HAM_SHORT,
     TPL("{EMO}", "{EMO}{EMO}", "{EMO}{EMO}{EMO}", "{EMO} {EMO}",
         "{EMO}{EMO}{EMO}{EMO}")},
    {"short", false, SPLIT_BOTH, 8, &B_HAM_SHORT,
     TPL("{nice|wow|lol|same|+1|this!|yes!!|love it|so good|mood|goals}",
         "{beautiful|cute|facts|agreed|legend|W|classic|haha|omg}{? {EMO}}",
         "{ok this is cool|needed this|big mood|iconic|respect|so true}{PUNCT}",
         "{gorgeous|stunning|perfect|wow wow}{PUNCT}",
         "{great pic|nice one|well done}{PUNCT}",
         "{haha yes|oh no|aww|yum|me too|same here}{PUNCT}")},
    {"story", false, SPLIT_BOTH, 5, &B_HAM,
     TPL("{this reminds me of|we did the same trip|i was in {PLACE}} {last year|in "
         "2019|a few "
         "months ago|back in college} and {it rained the whole time|we got completely "
         "lost|the "
         "food was unreal|i still think about it}. {honestly|anyway|seriously} {one of "
         "the best "
         "trips ever|can't wait to go back|you captured it perfectly}{PUNCT}",
         "i've been trying to {bake|make|grow|paint} something like this for "
         "{weeks|months|ages} "
         "and mine {never|always} {turns out|comes out} {this good|half as nice|like a "
         "disaster}. {any tips?|teach me your ways|respect}",
         "my {grandma|mom|dad|uncle} used to {make|have|say} {exactly this|the same "
         "thing|something like this} {every sunday|when we were kids|all the time}, "
         "{brought "
         "back so many memories|this made me smile|thank you for sharing}",
         "{as someone who has done this for years|i see this every day at work}, {this "
         "is spot "
         "on|you nailed it|great explanation}. {the part about|especially} {the "
         "details|the "
         "lighting|the first step} {is so true|matters most|people always forget}.",
         "okay so {i|we} tried {this|your recipe|the route you posted} {yesterday|last "
         "weekend} "
         "and {it worked perfectly|the kids loved it|it took way longer than expected "
         "but worth "
         "it}. {thanks for sharing|saving this|next time i'll bring snacks} {EMO}",
         "{funny|weird} story, {my neighbour|a friend of mine} has the {same|exact same} "
         "{NOUN} "
         "and {we|they} {argue about it|talk about it} {constantly|every time}{ haha|}. "
         "{yours looks better though|still {ADJ}}")},
    {"multilingual", false, SPLIT_BOTH, 6, &B_HAM_INTL,
     TPL("{LANG}{PUNCT}", "{LANG}{? {EMO}}", "{LANG} {NAME}{PUNCT}", "{LANG}, {LANG}")},
    {"link", false, SPLIT_BOTH, 4, &B_HAM_LINK,
     TPL("{i wrote about|we posted about|there's a good write up on} {this|the same "
         "trail|this "
         "place} {here|on my blog}: {HAMURL}",
         "{recipe|full recipe|the pattern|the map} is here {HAMURL}{ thanks again!|}",
         "for anyone asking, {the tickets|the schedule|the menu|the route} {are|is} on "
         "{HAMURL}",
         "{HAMURL} has {the full video|more photos|the whole story}",
         "{this|the} {article|thread|video} explains it well {HAMURL}",
         "found the {song|artist|shop}: {HAMURL}",
         "{we|i} went {last spring|in may}, {photos|notes} here {HAMURL}")},
    {"elongated", false, SPLIT_BOTH, 4, &B_HAM_SHORT,
     TPL("{sooo|soooo|sooooo} {goood|gooood|cuuute|prettyyy|yummmy}{!|!!|!!!}",
         "{yesss|yessss|yasss|yaaas}{ queen| finally|}",
         "{hahaha|hahahaha|hahahahaha|lmaooo|lmaoooo}",
         "{omg omg omg|omggg|omgggg} {this is everything|i can't|stop}",
         "{nooo|noooo} way{!!|}", "{wowww|wowwww|woooow} {EMO}",
         "i love this sooo {much|muchhh}", "best {NOUN} everrr",
         "{aaaaa|aaaah} {i'm screaming|so {ADJ}}")},
    {"congrats", false, SPLIT_BOTH, 5, &B_HAM_FRIEND,
     TPL("congrats{ on the new {job|house|baby|place}|!!| {NAME}!!}{? {EMO}}",
         "happy birthday {NAME}{!!!| 🎂| 🥳🥳}", "so proud of you{ {NAME}|}{PUNCT}",
         "well deserved{!|!!}", "congratulations to you both{ ❤️|}",
         "happy anniversary you two{ 💕|}",
         "{yay|finally} {!!|} {so happy for you|you did it}")},
    {"support", false, SPLIT_BOTH, 3, &B_HAM_FRIEND,
     TPL("sorry for your loss{ ❤️|}{. sending love|}",
         "sending {love|hugs|strength} {to you and your family|your way}",
         "{hope you feel better soon|get well soon}{ {NAME}|}{ 💙|}",
         "thinking of you{ {NAME}|}", "{you've got this|you got this}{!|!!}{ 💪|}",
         "take all the time you need{, we're here|}")},
    {"fan", false, SPLIT_BOTH, 4, &B_HAM_FAN,
     TPL("been following you since {2016|2018|2019|2020|the beginning} and {your content "
         "keeps "
         "getting better|you never disappoint|this is my favourite post yet}",
         "your {posts|videos|photos} always {make my day|cheer me up|inspire me}",
         "{first time|first} commenting{,| but} {i love your work|huge fan}",
         "i {followed|subscribed} after your {last|garden|travel} post and {no "
         "regrets|so glad i "
         "did}",
         "{you|your page} {inspired me to|got me to} {start running|learn to bake|pick "
         "up the "
         "camera again}",
         "{please|pls} never stop posting{ {EMO}|}")},
    {"chatter", false, SPLIT_BOTH, 16, &B_HAM,
     TPL("{SUBJ} {VPAST} {OBJ} {TIME}{ and {OUTCOME}|}{PUNCT}",
         "{can't wait|cannot wait|so excited} to {VBASE} {OBJ} {FUTURE}{PUNCT}",
         "see you {FUTURE}{ {NAME}|}{PUNCT}",
         "{let us know|tell us|let me know} {when|if} {you're|you are} {back|in "
         "town|free} "
         "{FUTURE}",
         "{is it|are they} {open|free|busy} on {DAY}?",
         "{SUBJ} would {love|enjoy|hate} this{ lol|}",
         "{thanks for|thank you for} {sharing|the tip|the recommendation|having "
         "us}{PUNCT}",
         "{we|i} should {VBASE} {OBJ} {FUTURE}",
         "{how|what} was the {food|weather|crowd|traffic} "
         "like?",
         "{OBJ} is {OPINION}{, but {OPINION}|}",
         "{this|that} {looks|sounds} like {so much fun|a "
         "lot of work|the best day|my kind of weekend}",
         "{SUBJ} {VPAST} {OBJ} {TIME}, {OPINION}",
         "{we|i} {still|} talk about {OBJ} from {TIME}",
         "{ok|okay} {SUBJ} {is|are} {going|coming} with us {FUTURE}",
         "{did you|have you ever} {VBASE} {OBJ}? {SUBJ} {VPAST} it {TIME}",
         "{next time|if you go back} {VBASE} {OBJ}, {OPINION}",
         "{wait|hold on}, is that {OBJ}? {SUBJ} {VPAST} it {TIME}!",
         "{miss|missing} {this|you guys|those days} {so much|already}{PUNCT}")},
    /* ---- ham, train only ---- */
    {"check-out", false, SPLIT_TRAIN, 3, &B_HAM,
     TPL("you should check out {PLACE} {next time|if you go back}",
         "{definitely|also} check out the {market|bakery|museum|waterfall} {nearby|down "
         "the road}",
         "check out the view from the top, {totally|so} worth it",
         "if you like this check out {NAME}'s {photos|work|garden} too",
         "check this out @{HANDLE}")},
    {"everyday-words", false, SPLIT_TRAIN, 5, &B_HAM_FRIEND,
     TPL("we won {the quiz|our match|the league|board game night} {yesterday|last "
         "night}{!!|}",
         "{free|free of charge} {refills|parking|entry} {is|was} the best part{ lol|}",
         "{i|we} followed {the|your} {advice|instructions} and it worked",
         "{messaged|texted} you{ about {saturday|dinner}|}",
         "{the link|link} {didn't work|is "
         "broken} for me{, can you repost?|}",
         "look at the {sky|cat|dog} in the {corner|background} lol",
         "{money|cash} well spent{ honestly|}",
         "tap the {photo|picture} to see it bigger, so {ADJ}",
         "following for more{, love this {NOUN}|}",
         "our {profile|page} pic is from {PLACE} too!",
         "{see|meet} us at {the|our} {usual spot|gate|café} {FUTURE}",
         "{congrats|well done}, you {totally|really} deserved the {prize|award|win}",
         "{we|i} got {it|ours} for free at the {fair|library sale|swap shop}",
         "{dm|message} sent{, check when you can|}",
         "{check|see} the {map|menu} in my "
         "{story|last post}",
         "{text|call} me {when you land|when you're home|after}{PUNCT}",
         "{i'll|we'll} bring {snacks|drinks|the blanket}, {you|u} bring {cards|music}",
         "{this|that} {video|tutorial|thread} helped {so much|a ton}, {thank "
         "you|thanks}{PUNCT}",
         "{put|posted} the {video|photos|playlist} in the group chat{ lol|}",
         "{free|spare} {tonight|this evening}? {we're|we are} {going|heading} to {OBJ}",
         "{check|look at} the {second|last} {photo|slide}, {so|too} {ADJ}",
         "{my|our} {cousin|uncle|coach} {won|got} {a|the} {medal|trophy|raffle} "
         "{TIME}{!|}",
         "{follow|following} {the|your} {steps|guide|recipe} {exactly|to the letter} and "
         "it "
         "{worked|came out {ADJ}}",
         "{link|links} to {the|your} {shop|playlist|blog} {please|pls}? {want|need} "
         "{one|it}",
         "{we|i} {chatted|talked} about {OBJ} {TIME}{, {OPINION}|}",
         "{sent|sending} {this|it} to {my mom|my sister|the group chat|my partner} "
         "{right now|"
         "immediately}{ 😂|}",
         "{text|message} {me|us} {if|when} you {get|find} {the|a} {chance|minute}")},
    {"dm-talk", false, SPLIT_TRAIN, 3, &B_HAM_FRIEND,
     TPL("{dm'd|messaged|texted} you the {address|times|plan}{ 👍|}",
         "{replied|answered} to your {dm|message} {btw|earlier}",
         "check your {messages|dms|whatsapp} {babe|bro|{NAME}}{ 👀|}",
         "i {sent|forwarded} it to you on {whatsapp|signal|messenger}",
         "{send|message} me {a pic|the name|the link} {later|when you're home} pls",
         "{we|i} {chatted|spoke} about this in {dms|the chat} {lol|haha|}",
         "{opened|read} your {message|dm}, {calling|will call} you {tonight|in a bit}")},
    {"contest-talk", false, SPLIT_TRAIN, 3, &B_HAM,
     TPL("{i|we} never win {anything|these things} lol",
         "good luck everyone in the "
         "{raffle|draw|bake-off}{!|}",
         "who won the {bake-off|quiz|race} in the end?",
         "the {prize|trophy|medal} {is|looks} {huge|tiny} haha",
         "free {samples|cake|lemonade} at the {market|opening|fair} today{ 😋|}",
         "{she|he|you} {won|earned} it fair and square{!|}",
         "{entered|signed up for} the {photo contest|fun run|pumpkin contest} {TIME}, "
         "{wish me "
         "luck|fingers crossed}")},
    {"event-talk", false, SPLIT_TRAIN, 3, &B_HAM_FRIEND,
     TPL("{our|the} {market|fair|open day} is {on|this} {DAY|saturday}, {come say hi|pop "
         "by}",
         "{join|come join} us for {a picnic|the beach cleanup|the park run} {FUTURE}",
         "{we're|we are} {playing|performing|reading} at the {library|café|town square} "
         "{FUTURE}{, bring friends|}",
         "{doors|gates} open at {7|8|6}{, see you there|}",
         "{everyone|all} welcome, {it's|its} {free|donation only|pay what you can}")},
    {"critique", false, SPLIT_TRAIN, 3, &B_HAM,
     TPL("not sure i agree with this{ tbh| honestly|}",
         "this is {wrong|misleading|not accurate}, the {NOUN} {isn't|wasn't} like that",
         "{respectfully|with respect}, {that's not how it works|you missed the point}",
         "the {lighting|editing} is a bit {much|off} here imo",
         "{meh|eh}, {liked|preferred} the last one more",
         "why would anyone {pay|queue} for this lol")},
    {"business-reply", false, SPLIT_TRAIN, 2, &B_HAM_LINK,
     TPL("thank you! we're open {till|until} {9|10|8} {tonight|today}{ 😊|}",
         "thanks for the kind words{, see you soon|!}",
         "{yes|yep} we ship to {PLACE}{!|}",
         "{glad|so glad} you enjoyed it{! come back soon|}")},
    /* ---- ham, test only ---- */
    {"giveaway-talk", false, SPLIT_TEST, 3, &B_HAM,
     TPL("did anyone {actually|ever} win {the|that} giveaway {last week|from march|lol}?",
         "{free|free entry} {entry|admission} to the {museum|zoo|pool} on {sundays|the "
         "first "
         "monday} btw",
         "{i|my sister} won {tickets|a voucher|a raffle} at the {school fair|office "
         "party}{ "
         "lol| haha|}, never win anything",
         "is the {workshop|class|tasting} free or do we need to {book|pay}?",
         "{they|the bakery} {were giving|gave} away free {samples|coffee} this morning{ "
         "😂|}",
         "you deserve to win {this|the competition}{!|}")},
    {"dm-friend", false, SPLIT_TEST, 3, &B_HAM_FRIEND,
     TPL("{dm|message|text} me the {recipe|address|details} {pls|please|when you can}",
         "i'll {message|dm|text} you {later|tonight} about {saturday|the trip|dinner}",
         "{check|sent you} {your|a} dm{!|}{ 👀|}",
         "sent you the {photos|link|video} in {messages|dms|chat}",
         "can you {dm|send} me the {name of the place|pattern}?")},
    {"recommend", false, SPLIT_TEST, 3, &B_HAM_LINK,
     TPL("{if you liked this,|btw} {look up|have a look at} {PLACE}'s {night market|old "
         "harbour|botanical garden}{, totally free|}",
         "{great|nice} {spot|pick}! the {café|bookshop} next door is worth a visit too",
         "{the|this} {guide|podcast episode} helped me {a lot|loads}: {HAMURL}",
         "{watch|listen to} the {full|whole} {interview|episode} on {HAMURL}")},
    {"gig", false, SPLIT_TEST, 2, &B_HAM_FRIEND,
     TPL("come see us {friday|saturday|tonight} at {the|our} {local pub|community "
         "hall|park}{! "
         "tickets at the door|, free entry|}",
         "{our|my} {band|choir|book club} is {playing|meeting} {next week|this sunday}{, "
         "everyone "
         "welcome|}")},
    {"sports", false, SPLIT_TEST, 3, &B_HAM,
     TPL("{what a|that was a} {goal|match|game|finish}{!!|}",
         "{ref|referee} was {blind|awful} "
         "today{ smh|}",
         "{we|they} {need|needed} a new {keeper|coach|striker} {asap|badly}",
         "{that|the} {last lap|final set|second half} {was insane|had me screaming}{ 😭|}",
         "{come on|let's go} {blues|reds|city|boys}{!!|}")},
    {"recipe-question", false, SPLIT_TEST, 2, &B_HAM,
     TPL("{can i|could i} {swap|use} {butter|eggs|sugar} for {oil|applesauce|honey} in "
         "this?",
         "how {many minutes|long} in the oven{?|??}",
         "is this {gluten free|vegan|spicy}?",
         "{does|would} this {freeze|keep} {well|for a week}?")},

    /* ---- spam, both splits ---- */
    {"follow-for-follow", true, SPLIT_BOTH, 8, &B_SPAM_F4F,
     TPL("{f4f|follow for follow|follow4follow|follow me i follow back|follow "
         "back|l4l|like for "
         "like}{ {EMO_S}|}",
         "{i followed you|followed u}{,| } {follow back|follow me back|pls follow back}{ "
         "🙏|}",
         "{follow|follow me} {and|&} {i'll|i will} follow {back|you back} "
         "{instantly|100%|guaranteed}",
         "{active|real} {followers|accounts} only{,| -} follow {and|then} comment done",
         "{gain|grow} {together|fast} {f4f|follow4follow|l4l}{ ✅|}",
         "new here{,| -} {follow me|let's support each other}{ {EMO_S}|}",
         "{follow|followed} {you|u}, {your turn|now you}{ 😉|}")},
    {"check-profile", true, SPLIT_BOTH, 8, &B_SPAM_BULK,
     TPL("check my {profile|page|bio|story}{ 😘| 🔥| 💋|}",
         "{see|visit} my {profile|bio} for {more|a surprise|something special}",
         "{link|links} in {my |}bio{!!|!!!| 👉}",
         "{who wants to|wanna} see more? {check|look at} my {profile|page}",
         "{hey|hi} {cutie|handsome|dear}{,|} {check out|look at} my {page|profile}{ 😏|}",
         "{don't|dont} look at my {profile|story}{ 🙈|}",
         "{what i post|my content} {in my bio|on my page} {will blow your mind|is "
         "better}{ 🔥|}")},
    {"crypto-giveaway", true, SPLIT_BOTH, 6, &B_SPAM_BULK,
     TPL("{COIN} giveaway{!|!!} send {AMOUNT} {COIN} get {double|2x|x2} back {SPAMURL}",
         "{we are|we're} giving away {MONEY} in {COIN} to {our|all} followers{, claim| "
         "at} "
         "{SPAMURL}",
         "{free|FREE} {COIN} {airdrop|giveaway} {live|now} {SPAMURL}",
         "{claim|grab} your {free |}{COIN} {before it ends|today only|now} {SPAMURL}",
         "{limited|last} {chance|spots}: {deposit|send} {AMOUNT} {COIN} {and|,} receive "
         "{AMOUNT} "
         "{COIN} {instantly|immediately}",
         "{COIN} {to the moon|pumping} {🚀🚀|📈}{,| -} {join|get in} {now|early} "
         "{SPAMURL}")},
    {"prize", true, SPLIT_BOTH, 6, &B_SPAM_BULK,
     TPL("{congratulations|congrats|CONGRATULATIONS}{!|!!} {you have been|you've "
         "been|you were} "
         "{selected|chosen|picked} {to win|to receive} {a|an|} {PRIZE}{.|!} "
         "{claim|collect} {it|your "
         "prize} {at|here|now} {SPAMURL}",
         "{you won|you are the winner of} {a|the} {PRIZE}{!|!!} {dm|message} "
         "{@{SHANDLE}|us} {to "
         "claim|within 24h}",
         "{🎁|🏆} {PRIZE} {giveaway|winner}{: |! }{click|tap} {SPAMURL}",
         "{spin|spin the wheel} {and|to} win {a|an} {PRIZE} {SPAMURL}",
         "{only|just} {3|5|10} {PRIZE}s left{!|}{ claim| get yours} {SPAMURL}",
         "{lucky|random} {winners|commenters} {get|receive} a {PRIZE}, {enter|register} "
         "at {SPAMURL}")},
    {"adult", true, SPLIT_BOTH, 6, &B_SPAM_BULK,
     TPL("{hot|lonely|sexy} {singles|girls|women} in your {area|city} {waiting|want to "
         "meet|looking for fun} {SPAMURL}",
         "{my|see my} {private|spicy|18+|uncensored} {pics|videos|content} {🔞|💋|🍑} "
         "{{SPAMURL}|in bio|on my page}",
         "{bored|lonely} {tonight|right now}? {chat|talk} with me {{SPAMURL}|😘}",
         "{i'm|im} {new here|looking for a friend} {and bored|}{, message me|, text me}{ "
         "😘| 💋|}",
         "{want|wanna} {to see|see} {more|what i'm hiding}? {🔞|😏} {SPAMURL}",
         "{come|click} {see|and see} me {naked|without filter} {SPAMURL}")},
    {"dm-collab", true, SPLIT_BOTH, 7, &B_SPAM_DM,
     TPL("{hey|hi|hello}{!|} {love|loving} your {content|feed|page}{!|} {dm|DM|message} "
         "{us|@{"
         "SHANDLE}} {for|to} {a collab|collaboration|a promotion|a paid partnership}{ 💕| "
         "🤝|}",
         "{promote|feature} {it|your page} on @{SHANDLE}{,|} {dm|DM} {us|now}",
         "{nice|great} {content|pic}{!|} {send|sent} {you|u} a {dm|message|DM}{ 📩|}",
         "{want|wanna} {more|10k} {followers|views}? {dm|DM} {me|us}",
         "{dm|DM|inbox} me {for|about} {business|a deal|an offer}",
         "{this|your post} {deserves|needs} more {views|exposure}, {message|dm} "
         "@{SHANDLE}")},
    {"shortener", true, SPLIT_BOTH, 5, &B_SPAM_BULK,
     TPL("{this|it} {changed|will change} my life {SHORTURL}",
         "{watch|see} {this|before it's deleted|what happened next} {SHORTURL}",
         "{omg|wow} {you're|you are} in this {video|pic} {SHORTURL}",
         "{free|easy} {money|cash|gift} {SHORTURL}",
         "{click|tap} {here|the link} {SHORTURL}{ 👈|}",
         "{is this you|is that u}?? {SHORTURL}")},
    {"bot-praise", true, SPLIT_BOTH, 6, &B_SPAM_BOT,
     TPL("{nice|great|amazing|awesome|beautiful} {post|pic|content|photo}{!|!!|}{ 👍| 🔥| "
         "👏| 😍|}",
         "{keep it up|keep going|keep posting}{!|!!| bro}",
         "{wow|so nice|very good}{!!|}{ 👍👍| 🔥🔥|}",
         "{lovely|awesome} {work|picture}{ dear| bro|}", "{great|amazing} {job|shot}{!|}",
         "{good|nice} {vibes|one}{ 🙌|}")},
    /* a bot re-posting ordinary comments (a ham template of the split),
     * fast and repeatedly: only its behaviour gives it away */
    {"copycat", true, SPLIT_BOTH, 5, &B_SPAM_BOT, TPL("(a ham template)")},
    /* ---- spam, train only ---- */
    {"crypto-testimonial", true, SPLIT_TRAIN, 6, &B_SPAM_SLOW,
     TPL("I {started|began} {trading|investing} with {MONEY} and {now|today} I "
         "{earn|make} "
         "{MONEY} {weekly|every week|monthly} thanks to {@{SHANDLE}|{NAME}}{ {EMO_S}|}",
         "{all thanks to|big thanks to|shout out to} @{SHANDLE} {for|who helped me} "
         "{recovering|recover} my {lost|stolen} {COIN}",
         "@{SHANDLE} {is the best|is legit|is real}, {i received|got} {MONEY} "
         "{profit|payout} "
         "{today|this morning}",
         "{who else here|anyone here} {trades|invests in} {COIN}{? i need advice}",
         "{investing|trading} {COIN} with @{SHANDLE} {changed my life|was the best "
         "decision}")},
    {"buy-followers", true, SPLIT_TRAIN, 4, &B_SPAM_BULK,
     TPL("{buy|get} {real|active|cheap} {followers|likes|views} {at|from|on} {SPAMURL}",
         "{grow|boost} your {account|page} {fast|overnight} {with|at} {SPAMURL}",
         "{10k|5k|1000} {followers|likes} for {only|just} {MONEY} {SPAMURL}",
         "{want|need} {more|real} {followers|engagement}? {SPAMURL}")},
    {"self-promo", true, SPLIT_TRAIN, 4, &B_SPAM_SLOW,
     TPL("check out my {new|latest} {song|track|video|channel|mixtape} {{SPAMURL}|on my "
         "page}{, "
         "would mean a lot|!}{ 🙏|}",
         "{sub|subscribe} to my {channel|page} {i|I} {sub|follow} back{ {SPAMURL}|}",
         "{new|my} {track|beat} {out now|dropped}{ 🔥🔥|} {{SHORTURL}|link in bio}")},
    {"romance", true, SPLIT_TRAIN, 4, &B_SPAM_DM,
     TPL("{hello|hi} {dear|beautiful|pretty}{,|} {you look|your smile is} so "
         "{lovely|nice|beautiful}{,|} {i would like|i'd love} to {know you better|be "
         "your "
         "friend}{, text me|, kindly reply}",
         "{can we be friends|can i know you}{?|??} {i'm|im} {a widower|single|an "
         "engineer} "
         "{from|in} {PLACE}",
         "{hi|hello} {dear|sweetheart} {please|kindly} {accept|check} my "
         "{request|message}")},
    {"inbox-scam", true, SPLIT_TRAIN, 4, &B_SPAM_DM,
     TPL("{hello|hi} {dear|friend}{,|} {i|we} sent you a {message|request}{,|.} "
         "{check|please "
         "check} your {inbox|requests}",
         "{important|urgent} {message|offer} for you{,|} {check|open} your "
         "{dm|inbox|messages} "
         "{now|asap}{ 📩|}",
         "{our team|the admin} {selected|chose} your {page|account} for {a "
         "feature|promotion}{,|.} "
         "{message|contact} @{SHANDLE}",
         "{you|u} {qualify|are eligible} for {a|our} {partnership|sponsorship}{!|} "
         "{details|info} "
         "{in|via} {dm|inbox}")},
    /* ---- spam, test only ---- */
    {"ambassador", true, SPLIT_TEST, 5, &B_SPAM_DM,
     TPL("{we|we'd} {love|like} {to|you to} {be|become} our {brand "
         "ambassador|ambassador|partner}{!|} "
         "{send|drop} a {dm|DM|message} to @{SHANDLE}{ 💖| ✨|}",
         "{your|ur} {feed|page} {is|looks} {perfect|amazing} for our {new|summer} "
         "{campaign|collection}{,|!} {contact|reach} @{SHANDLE}",
         "{hey|hi} {babe|love}{!|} {we|our team} {want to|would love to} {send you|gift "
         "you} "
         "{free |}{products|items}{, dm| - dm} @{SHANDLE}")},
    {"phishing", true, SPLIT_TEST, 4, &B_SPAM_BULK,
     TPL("{your|ur} {account|page} {has been|was} {reported|flagged} for "
         "{copyright|community} "
         "{violation|infringement}{.|,} {verify|appeal|confirm} {at|here|within 24h} "
         "{SPAMURL} "
         "{or|otherwise} it will be {deleted|disabled|suspended}",
         "{final|last} {warning|notice}{:|!} {verify|confirm} your {account|identity} "
         "{SPAMURL}",
         "{security|support} {team|center}{:|} {unusual|suspicious} {login|activity} "
         "{detected|on "
         "your account}{,|.} {secure|check} it {now|here} {SPAMURL}")},
    {"job", true, SPLIT_TEST, 4, &B_SPAM_DM,
     TPL("{earn|make} {MONEY} {daily|a day|per day|weekly} {working from home|from your "
         "phone}{, "
         "no experience needed|, part time|}{.|!} {text|message|whatsapp} {me|us} "
         "{{PHONE}|on whatsapp|on telegram}",
         "{hiring|we are hiring|looking for} {people|moms|students} {to work from "
         "home|who want "
         "extra income}{ {MONEY}/day|}{,|} {contact|dm} {@{SHANDLE}|{PHONE}}",
         "{easy|simple} {online|remote} {job|task}{:|,} {like posts|review products|type "
         "from "
         "home} {and|to} {earn|get paid} {MONEY}")},
    {"loan", true, SPLIT_TEST, 2, &B_SPAM_BULK,
     TPL("{need|need some} {cash|money} {fast|urgently}? {instant|quick} "
         "{loans|approval} {no "
         "credit check|with bad credit} {SPAMURL}",
         "{get|apply for} {a|your} {loan|grant} {today|in minutes} {SPAMURL}",
         "{debt|bills} {problems|stress}? {we can help|call us} {PHONE}")},
    {"foreign-spam", true, SPLIT_TEST, 2, &B_SPAM_F4F,
     TPL("{sígueme|sigueme} y te sigo{ ✅|}", "{gana|ganá} dinero desde casa {SPAMURL}",
         "{segue|siga} de volta{ 🔥|}",
         "{ganhe|compre} seguidores {reais|agora} {SPAMURL}",
         "{suis-moi|abonne-toi} je {te suis|m'abonne} en retour")},
};

/* ---- obfuscation ------------------------------------------------------------------ */

enum obf {
  OBF_LEET,
  OBF_SPACED,
  OBF_ZW,
  OBF_CYR,
  OBF_BOLD,
  /* test only below */
  OBF_DOTTED,
  OBF_FULLWIDTH,
  OBF_SANS,
  OBF_CIRCLED,
  OBF_COUNT
};

/* True for the byte offset of a word character that may be obfuscated: an
 * ASCII letter not inside a URL or @handle. */
static void mark_words(const char *t, size_t n, bool *ok) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && t[j] != ' ') j++;
    bool skip = t[i] == '@' || memchr(t + i, '.', j - i) || memchr(t + i, '/', j - i);
    for (size_t k = i; k < j; k++) {
      char c = t[k];
      ok[k] = !skip && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
    }
    if (j < n) ok[j] = false;
    i = j + 1;
  }
}

/* A word (start, length) of >= 4 letters to disguise, or false. */
static bool pick_word(size_t n, const bool *ok, size_t *ws, size_t *wl) {
  size_t starts[64], lens[64], m = 0;
  for (size_t i = 0; i < n && m < 64;) {
    if (!ok[i]) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && ok[j]) j++;
    if (j - i >= 4) {
      starts[m] = i;
      lens[m++] = j - i;
    }
    i = j;
  }
  if (!m) return false;
  size_t k = below(m);
  *ws = starts[k];
  *wl = lens[k];
  return true;
}

static uint32_t math_letter(char c, uint32_t base) {
  if (c >= 'A' && c <= 'Z') return base + (uint32_t)(c - 'A');
  return base + 26 + (uint32_t)(c - 'a');
}

static void obfuscate(sbuf *s, enum obf kind) {
  sbuf o = {.n = 0};
  o.b[0] = '\0';
  bool ok[OUT_MAX];
  mark_words(s->b, s->n, ok);
  size_t ws = 0, wl = 0;
  bool whole = kind == OBF_FULLWIDTH || kind == OBF_BOLD || kind == OBF_SANS ||
               kind == OBF_CYR || kind == OBF_LEET || kind == OBF_ZW;
  if (!whole && !pick_word(s->n, ok, &ws, &wl)) return;
  static const uint32_t zw[] = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF};
  double p = kind == OBF_ZW ? 0.25 : 0.55;
  uint32_t math_base = kind == OBF_BOLD ? 0x1D400 : chance(0.5) ? 0x1D5D4 : 0x1D4D0;
  for (size_t i = 0; i < s->n; i++) {
    char c = s->b[i];
    bool in_word = whole ? ok[i] : (i >= ws && i < ws + wl);
    if (!in_word) {
      put(&o, &c, 1);
      continue;
    }
    char lc = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    switch (kind) {
    case OBF_LEET: {
      const char *from = "aeiost", *to = "431057";
      const char *f = strchr(from, lc);
      if (f && chance(p)) c = to[f - from];
      put(&o, &c, 1);
      break;
    }
    case OBF_SPACED:
    case OBF_DOTTED:
      put(&o, &c, 1);
      if (i + 1 < ws + wl) puts_(&o, kind == OBF_SPACED ? " " : ".");
      break;
    case OBF_ZW:
      put(&o, &c, 1);
      if (i + 1 < s->n && ok[i + 1] && chance(p)) put_cp(&o, zw[below(N(zw))]);
      break;
    case OBF_CYR: {
      const char *from = "aeopcxy";
      static const uint32_t to[] = {0x430, 0x435, 0x43E, 0x440, 0x441, 0x445, 0x443};
      const char *f = strchr(from, c);
      if (f && chance(p))
        put_cp(&o, to[f - from]);
      else
        put(&o, &c, 1);
      break;
    }
    case OBF_BOLD:
    case OBF_SANS: put_cp(&o, math_letter(c, math_base)); break;
    case OBF_FULLWIDTH: put_cp(&o, 0xFF01 + (uint32_t)(c - '!')); break;
    case OBF_CIRCLED: put_cp(&o, 0x24D0 + (uint32_t)(lc - 'a')); break;
    default: put(&o, &c, 1); break;
    }
  }
  *s = o;
}

/* ---- surface variation --------------------------------------------------- */

static void casing(sbuf *s, bool spam) {
  double r = unif();
  if (spam ? r < 0.12 : r < 0.02) { /* ALL CAPS */
    for (size_t i = 0; i < s->n; i++)
      if (s->b[i] >= 'a' && s->b[i] <= 'z') s->b[i] = (char)(s->b[i] - 32);
  } else if (spam && r < 0.40) { /* Title Case */
    bool start = true;
    for (size_t i = 0; i < s->n; i++) {
      if (start && s->b[i] >= 'a' && s->b[i] <= 'z') s->b[i] = (char)(s->b[i] - 32);
      start = s->b[i] == ' ';
    }
  } else if (r < 0.55 && s->n && s->b[0] >= 'a' && s->b[0] <= 'z') { /* Sentence */
    s->b[0] = (char)(s->b[0] - 32);
  }
}

static void typo(sbuf *s) {
  for (int tries = 0; tries < 8; tries++) {
    size_t i = below(s->n);
    if (i + 1 >= s->n) continue;
    char a = s->b[i], b = s->b[i + 1];
    if (!(a >= 'a' && a <= 'z') || !(b >= 'a' && b <= 'z')) continue;
    if (chance(0.5)) {
      s->b[i] = b;
      s->b[i + 1] = a;
    } else {
      memmove(s->b + i, s->b + i + 1, s->n - i);
      s->n--;
    }
    return;
  }
}

/* Ham with odd characters: fancy fonts pasted from a generator, a stray
 * zero-width space, or a no-break space. */
static void ham_oddity(sbuf *s) {
  switch (below(3)) {
  case 0: obfuscate(s, cur_split == SPLIT_TRAIN ? OBF_BOLD : OBF_SANS); break;
  case 1: {
    size_t i = below(s->n + 1);
    while (i < s->n && (s->b[i] & 0xC0) == 0x80) i++; /* a character boundary */
    sbuf o = {.n = 0};
    put(&o, s->b, i);
    put_cp(&o, 0x200B);
    put(&o, s->b + i, s->n - i);
    *s = o;
    break;
  }
  default:
    for (size_t i = 0; i < s->n; i++) {
      if (s->b[i] == ' ') {
        sbuf o = {.n = 0};
        put(&o, s->b, i);
        put_cp(&o, 0xA0);
        put(&o, s->b + i + 1, s->n - i - 1);
        *s = o;
        break;
      }
    }
  }
}

/* ---- behaviour ----------------------------------------------------------- */

typedef struct {
  unsigned age_days, follows, r1m, r1h, same;
} behaviour;

static behaviour sample_behaviour(const behav *b, bool short_text) {
  behaviour o;
  if (chance(b->p_new)) {
    o.age_days = (unsigned)(unif() * 7);
  } else {
    double a = b->age_med * exp(b->age_sig * gauss());
    if (a < 7) a = 7 + unif() * 30;
    if (a > 5000) a = 5000;
    o.age_days = (unsigned)a;
  }
  o.follows = chance(b->p_follow);
  double rate = b->rate_1h * exp(0.8 * gauss()); /* users differ */
  bool burst = chance(b->p_burst);
  if (burst) rate *= 2 + unif() * 4;
  o.r1h = poisson(rate);
  double m = burst ? 2 + rate / 8 : (double)o.r1h / 40;
  o.r1m = poisson(m);
  if (o.r1m > o.r1h) o.r1h = o.r1m;
  double prep = b->p_repeat;
  if (short_text && prep < 0.2) prep = 0.2; /* "nice", "🔥" get reused */
  o.same = chance(prep) ? 1 + poisson(b->rep_mean - 1) : 0;
  if (o.same > o.r1h + 20) o.same = o.r1h + 20;
  return o;
}

/* ---- main
 * ------------------------------------------------------------------------------ */

/* Time. The training split is in time order (row i at time i / lines) and
 * things come and go as they do in a real stream: a spam campaign or a ham
 * topic (every family but the evergreen ones) runs for 15-45% of the
 * period, and each template of any family is in use for 30-100% of it. Cross-validation
 * on contiguous time blocks (tools/spam_train) therefore meets campaigns
 * and phrasings its training folds saw little of. The test split comes
 * after the training period: every family and template it may use is
 * active throughout. */
static double cur_time;
static uint64_t cur_seed;

static bool evergreen(const family *f) {
  static const char *const always[] = {"follow-for-follow",
                                       "check-profile",
                                       "bot-praise",
                                       "compliment",
                                       "short",
                                       "emoji",
                                       "chatter"};
  for (size_t i = 0; i < N(always); i++)
    if (strcmp(f->name, always[i]) == 0) return true;
  return false;
}

/* Whether the window (min_len..max_len of the period, placed at random by
 * key) covers the current time; always true in the test split. */
static bool active(uint64_t key, double min_len, double max_len) {
  if (cur_split == SPLIT_TEST) return true;
  uint64_t x = cur_seed ^ (key * 0x9e3779b97f4a7c15u);
  double u1 = (double)(splitmix(&x) >> 11) * 0x1.0p-53;
  double u2 = (double)(splitmix(&x) >> 11) * 0x1.0p-53;
  double len = min_len + (max_len - min_len) * u2, start = u1 * (1 - len);
  return cur_time >= start && cur_time < start + len;
}

static bool family_active(size_t i) {
  return evergreen(&FAMILIES[i]) || active(i + 1, 0.15, 0.45);
}

static const family *pick_family(bool spam) {
  for (int timed = 1; timed >= 0; timed--) {
    double total = 0;
    for (size_t i = 0; i < N(FAMILIES); i++)
      if (FAMILIES[i].spam == spam && (FAMILIES[i].splits & cur_split) &&
          (!timed || family_active(i)))
        total += FAMILIES[i].weight;
    if (total <= 0) continue;
    double r = unif() * total;
    for (size_t i = 0; i < N(FAMILIES); i++) {
      if (FAMILIES[i].spam != spam || !(FAMILIES[i].splits & cur_split) ||
          (timed && !family_active(i)))
        continue;
      r -= FAMILIES[i].weight;
      if (r < 0) return &FAMILIES[i];
    }
  }
  return NULL;
}

/* In a family of both splits, every fourth template is test-only. */
static const char *pick_template(const family *f) {
  size_t fi = (size_t)(f - FAMILIES);
  for (int tries = 0;; tries++) {
    size_t i = below(f->ntpl);
    bool test_only = f->splits == SPLIT_BOTH && f->ntpl >= 4 && i % 4 == 3;
    if (test_only && cur_split != SPLIT_TEST) continue;
    if (tries < 200 && !active(1000 + fi * 64 + i, 0.3, 1.0)) continue;
    return f->tpl[i];
  }
}

static size_t fam_count[2][N(FAMILIES)]; /* [split - 1][family] */

static void gen_comment(bool spam, sbuf *s, behaviour *bh) {
  const family *f = pick_family(spam);
  fam_count[cur_split - 1][f - FAMILIES]++;
  s->n = 0;
  s->b[0] = '\0';
  expand_str(s, pick_template(strcmp(f->name, "copycat") ? f : pick_family(false)));
  casing(s, spam);
  if (!spam && chance(0.06)) typo(s);
  if (spam && chance(0.3)) {
    enum obf k;
    do k = (enum obf)below(OBF_COUNT);
    while (cur_split == SPLIT_TRAIN && k >= OBF_DOTTED);
    obfuscate(s, k);
    if (chance(0.2)) obfuscate(s, OBF_ZW);
  }
  if (spam && chance(0.25)) {
    puts_(s, " ");
    gen_emo_s(s);
  }
  if (!spam && chance(0.015)) ham_oddity(s);
  for (size_t i = 0; i < s->n; i++)
    if (s->b[i] == '\t' || s->b[i] == '\n' || s->b[i] == '\r') s->b[i] = ' ';
  const behav *b = f->b;
  if (spam && chance(0.10)) b = &B_STEALTH;
  if (!spam && chance(0.07)) b = &B_NEWBIE;
  *bh = sample_behaviour(b, s->n < 14);
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool valid_utf8(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char b = p[i];
    size_t k;
    uint32_t c;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      k = 1;
      c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      k = 2;
      c = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      k = 3;
      c = b & 0x07;
    } else {
      return false;
    }
    if (i + k >= n) return false; /* truncated */
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return false;
      c = (c << 6) | (p[i + j] & 0x3F);
    }
    if ((k == 2 && c < 0x800) || (k == 3 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF))
      return false;
    i += k + 1;
  }
  return true;
}

static int write_split(const char *path, int split, size_t lines, uint64_t seed) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return 1;
  }
  cur_split = split;
  cur_seed = seed;
  rng_seed(seed * 2 + (uint64_t)split);
  for (size_t i = 0; i < lines; i++) {
    cur_time = (double)i / (double)lines;
    bool spam = chance(0.30);
    sbuf s;
    behaviour bh;
    gen_comment(spam, &s, &bh);
    if (!valid_utf8((const unsigned char *)s.b, s.n) || s.n == 0) {
      fprintf(stderr, "gen_comments: bad text generated: %s\n", s.b);
      fclose(f);
      return 1;
    }
    fprintf(f, "%s\t%u\t%u\t%u\t%u\t%u\t%s\n", spam ? "spam" : "ham", bh.age_days,
            bh.follows, bh.r1m, bh.r1h, bh.same, s.b);
  }
  if (fclose(f) != 0) {
    perror(path);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t seed = 1;
  size_t ntrain = 6000, ntest = 4000;
  const char *out = "datasets/comments";
  bool stats = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--stats") == 0)
      stats = true;
    else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0)
      seed = strtoull(argv[++i], NULL, 10);
    else if (i + 1 < argc && strcmp(argv[i], "--train") == 0)
      ntrain = strtoul(argv[++i], NULL, 10);
    else if (i + 1 < argc && strcmp(argv[i], "--test") == 0)
      ntest = strtoul(argv[++i], NULL, 10);
    else if (i + 1 < argc && strcmp(argv[i], "--out") == 0)
      out = argv[++i];
    else {
      fprintf(stderr, "usage: gen_comments [--seed N] [--train N] [--test N] [--out DIR] "
                      "[--stats]\n");
      return 2;
    }
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/train.tsv", out);
  if (write_split(path, SPLIT_TRAIN, ntrain, seed)) return 1;
  snprintf(path, sizeof path, "%s/test.tsv", out);
  if (write_split(path, SPLIT_TEST, ntest, seed)) return 1;
  if (stats) {
    fprintf(stderr, "%-20s %-5s %-6s %6s %6s\n", "family", "label", "splits", "train",
            "test");
    for (size_t i = 0; i < N(FAMILIES); i++) {
      const family *f = &FAMILIES[i];
      fprintf(stderr, "%-20s %-5s %-6s %6zu %6zu\n", f->name, f->spam ? "spam" : "ham",
              f->splits == SPLIT_BOTH    ? "both"
              : f->splits == SPLIT_TRAIN ? "train"
                                         : "test",
              fam_count[0][i], fam_count[1][i]);
    }
  }
  return 0;
}
