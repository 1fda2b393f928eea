#!/usr/bin/env bash
# What a user does with pushwire: install it into a prefix, then build and run a program
# against it in every documented way - pkg-config (shared), pkg-config --static, and CMake's
# find_package (the shared and the static target) - from C and from C++; the README's example
# as shown; and check that the shared object exports exactly the header's PW_API calls.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
# Checked to fail: with PW_API defined empty (nothing exported: undefined reference to
# pw_server_new), without zlib in Requires.private (undefined inflate* in the static link),
# without the llhttp visibility/version script (llhttp_* exported), and with <stdio.h> taken
# out of the README example (implicit declaration of snprintf).
set -euo pipefail
build=$(realpath "$1"); src=$(realpath "$2")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "install into a temporary prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libpushwire.so -print -quit)")
[ -n "$libdir" ] || fail "libpushwire.so not installed"
export PKG_CONFIG_PATH=$libdir/pkgconfig

step "exports: exactly the header's PW_API calls"
sed -n 's/^PW_API [^(]*[ *]\(pw_[a-z_0-9]*\)(.*/\1/p' "$src/include/pushwire.h" | sort >"$work/declared"
nm -D --defined-only "$libdir/libpushwire.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
  sed 's/@.*//' | grep -v '^PUSHWIRE_' | sort >"$work/exported"
[ -s "$work/declared" ] || fail "no PW_API declarations found in the header"
diff -u "$work/declared" "$work/exported" || fail "exported symbols differ from the header"
echo "$(wc -l <"$work/declared") symbols, no others"

run() { # NAME: run a built program with the installed library first on the search path
  LD_LIBRARY_PATH=$libdir "$work/$1" || fail "$1 did not run"
}

step "pkg-config, shared: C and C++"
cflags=$(pkg-config --cflags pushwire); libs=$(pkg-config --libs pushwire)
cc -std=c11 -Wall -Werror $cflags "$src/tests/install/app.c" $libs -o "$work/app_pc_c"
c++ -x c++ -std=c++11 -Wall -Werror $cflags "$src/tests/install/app.c" $libs -o "$work/app_pc_cxx"
LD_LIBRARY_PATH=$libdir ldd "$work/app_pc_c" | grep -q "$libdir/libpushwire.so" ||
  fail "app_pc_c is not linked to the installed libpushwire.so"
run app_pc_c; run app_pc_cxx

step "pkg-config --static: C and C++ (libpushwire.a, its dependencies from Requires.private)"
slibs=$(pkg-config --static --libs pushwire | sed 's/-lpushwire\b/-l:libpushwire.a/')
cc -std=c11 -Wall -Werror $cflags "$src/tests/install/app.c" $slibs -o "$work/app_static_c"
c++ -x c++ -std=c++11 -Wall -Werror $cflags "$src/tests/install/app.c" $slibs -o "$work/app_static_cxx"
! ldd "$work/app_static_c" | grep -q libpushwire || fail "app_static_c uses the shared library"
run app_static_c; run app_static_cxx

step "find_package(pushwire): pushwire::pushwire (C) and pushwire::pushwire_static (C++)"
mkdir -p "$work/cmake_app"
cp "$src/tests/install/app.c" "$work/cmake_app/app.c"
cp "$src/tests/install/app.c" "$work/cmake_app/app.cpp"
cat >"$work/cmake_app/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(user_app C CXX)
find_package(pushwire 0.1 REQUIRED)
add_executable(app_cmake_c app.c)
target_link_libraries(app_cmake_c PRIVATE pushwire::pushwire)
add_executable(app_cmake_cxx app.cpp)
target_link_libraries(app_cmake_cxx PRIVATE pushwire::pushwire_static)
CMAKE
cmake -S "$work/cmake_app" -B "$work/cmake_app/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake_app/build" >/dev/null
cp "$work/cmake_app/build/app_cmake_c" "$work/cmake_app/build/app_cmake_cxx" "$work/"
run app_cmake_c; run app_cmake_cxx

step "the README example compiles as shown, and runs"
awk '/^```c$/ {on=1; next} /^```$/ {if (on) exit} on' "$src/README.md" >"$work/readme.c"
grep -q pw_server_new "$work/readme.c" || fail "no C example found in README.md"
cc -std=c11 -Wall -Werror $cflags "$work/readme.c" $libs -o "$work/readme_example"
run readme_example
echo "install: all ok"
