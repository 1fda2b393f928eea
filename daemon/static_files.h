/* Static files from --www: GET only, content type by extension, ETag / If-None-Match (304),
 * and nothing outside the root: ".." segments (also %2e%2e) get 403, a symlink resolving
 * outside the root gets 403, hidden files (".name") and everything missing get 404. */
#ifndef PUSHWIRED_STATIC_FILES_H
#define PUSHWIRED_STATIC_FILES_H

#include <pushwire.h>
#include <stddef.h>

/* Largest file served; bigger ones are answered 500 (and logged): files are read whole. */
#define PWD_STATIC_MAX_FILE (32u << 20)

/* Where a response's bytes live until the library has copied them (after on_http returns). */
typedef struct pwd_reply {
  char *body;         /* malloc'ed, or NULL; freed before the next request on this thread */
  char headers[1024]; /* extra header lines */
} pwd_reply;

/* Answer req from the files under root (a realpath without trailing '/'). */
void pwd_static_serve(const char *root, const pw_request *req, pw_response *res, pwd_reply *out);

/* The MIME type for a file name, by extension; "application/octet-stream" if unknown. */
const char *pwd_content_type(const char *name);

#endif
