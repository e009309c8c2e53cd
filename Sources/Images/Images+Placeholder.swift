// Images module
