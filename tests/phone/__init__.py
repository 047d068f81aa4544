"""A stand-in Android phone for the real adb client and server (adbd side of the protocol, stdlib only)."""
