/* Error codes: names and texts generated from the one table in pushwire.h (PW_ERRNO_MAP),
 * so the enum, pw_strerror and pw_err_name cannot drift apart. */
#include "pushwire.h"

const char *pw_strerror(int code) {
  switch (code) {
#define PW__ERR_TEXT(name, value, text) \
  case PW_##name: return text;
    PW_ERRNO_MAP(PW__ERR_TEXT)
#undef PW__ERR_TEXT
  case 0: return "success";
  default: return "unknown error";
  }
}

const char *pw_err_name(int code) {
  switch (code) {
#define PW__ERR_NAME(name, value, text) \
  case PW_##name: return "PW_" #name;
    PW_ERRNO_MAP(PW__ERR_NAME)
#undef PW__ERR_NAME
  case 0: return "PW_OK";
  default: return "PW_UNKNOWN";
  }
}
