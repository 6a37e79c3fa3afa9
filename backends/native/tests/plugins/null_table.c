/* A plugin whose entry point returns no table. */
#include <stddef.h>

const void *spindle_plugin_entry(void) { return NULL; }
