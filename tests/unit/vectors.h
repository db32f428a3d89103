/* Access to the shared known-answer vectors (../shared/vectors).
 *
 * The directory is taken from $TSR_VECTORS, else from the path baked in
 * at build time (the source tree's ../shared/vectors). */
#ifndef TSR_TEST_VECTORS_H
#define TSR_TEST_VECTORS_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "common/bytes.h"

/* Full path of a vector file (static buffer), or NULL if absent. */
const char *vec_path(const char *rel);
/* Whole file as a NUL-terminated string (caller frees), or NULL. */
char *vec_read_file(const char *path, size_t *len);
/* Parsed JSON of a vector file (caller cJSON_Delete), or NULL if absent
 * or unparsable; *why gets the reason. */
cJSON *vec_load(const char *rel, const char **why);
/* Hex string member `key` of obj decoded into out. A JSON null decodes to
 * an empty buffer and returns 1 (absent); a present value returns 0; a
 * missing key or bad hex returns a negative code. */
int vec_hex(const cJSON *obj, const char *key, buf_t *out);
/* Integer member (must be present). */
long long vec_int(const cJSON *obj, const char *key);
/* Entries whose cipher_suite is suite (or every entry if suite is 0). */
bool vec_suite_is(const cJSON *entry, int suite);
/* Prints the per-file/suite line "vectors <file> suite <n>: <count> entries
 * checked" to stdout. */
void vec_report(const char *file, int suite, int count);

#endif
