/* A shared library that is not a Spindle plugin: it exports no spindle_plugin_entry. */
int not_a_plugin(void) { return 42; }
