// Protocol module
