#!/bin/sh
# Builds the SDSL harness of `npm run bench:ngram`: benches/ngram_sdsl.sh OUT_BINARY
# Needs Debian's libsdsl-dev and libdivsufsort-dev. Flags as SDSL's own CMake build sets them
# (-O3 -DNDEBUG -msse4.2: hardware popcount for rank).
set -e
here=$(dirname "$0")
exec g++ -std=c++17 -O3 -DNDEBUG -msse4.2 -o "$1" "$here/ngram_sdsl.cpp" -lsdsl -ldivsufsort -ldivsufsort64
