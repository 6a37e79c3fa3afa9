module example.invalid/spindle/tests/go_unregistered

go 1.19

require example.invalid/spindle/abi/go v0.0.0

replace example.invalid/spindle/abi/go => ../../../../../abi/go
