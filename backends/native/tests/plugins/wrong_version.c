/* A plugin that claims a future ABI version. */
#include <stddef.h>
#include <stdint.h>

struct table {
    uint32_t abi_version;
    uint32_t size;
    void *init, *step, *drop;
};

static const struct table TABLE = {99, sizeof(struct table), NULL, NULL, NULL};

const struct table *spindle_plugin_entry(void) { return &TABLE; }
