/* The built-in demo source of pushwired (--demo): producer threads that publish live JSON values
 * (demo.sine 20 Hz, demo.cpu 4 Hz, demo.log and demo.counter 1 Hz) through a publish callback,
 * so the demo page in examples/www has something to draw. */
#ifndef PUSHWIRED_DEMO_H
#define PUSHWIRED_DEMO_H

#include <stddef.h>

/* Called from the producer threads, concurrently: it must be thread-safe (pw_publish is).
 * json is a complete JSON value of len bytes, valid only during the call. */
typedef int (*demo_publish_fn)(void *ctx, const char *topic, const char *json, size_t len);

int demo_start(demo_publish_fn publish, void *ctx); /* starts producer threads, 0 or -1 */
void demo_stop(void);                               /* stops and joins them */

#endif
