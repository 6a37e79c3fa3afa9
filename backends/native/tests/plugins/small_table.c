/* A plugin that claims this ABI version with a table smaller than that version's. */
#include <stddef.h>
#include <stdint.h>

struct table {
    uint32_t abi_version;
    uint32_t size;
    void *init;
};

static const struct table TABLE = {1, sizeof(struct table), NULL};

const struct table *spindle_plugin_entry(void) { return &TABLE; }
