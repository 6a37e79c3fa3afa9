// A Go plugin that exports the ABI's entry point (it imports the package) but never calls
// spindle.Register: every spawn of it must fail with the SDK's own error.
package main

import _ "example.invalid/spindle/abi/go"

func main() {}
