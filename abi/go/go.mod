module example.invalid/spindle/abi/go

go 1.19
