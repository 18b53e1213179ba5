#!/usr/bin/env bash
# check-layers.sh - the one-way rule of DESIGN.md, checked.
#
# The library's folders, bottom to top: base host kvm cpu vmm workload;
# cli, bench, tests and examples sit on top. A folder may include headers
# of, and call functions defined in, its own layer or the layers below it,
# never above. Checked four ways:
#   1. includes: every #include "..." in src/<layer>/ and include/tandem/
#      resolves to a layer no higher than the includer's;
#   2. calls: every undefined symbol of an object built from src/<layer>/
#      that another library object defines is defined in a layer no higher
#      (nm over the objects of a build variant: a call through an extern
#      declaration that no include shows is caught too);
#   3. public headers include only system headers and other public headers,
#      and each compiles on its own with -Iinclude alone;
#   4. --self-test: plants an upward include and an upward call in a
#      scratch copy and checks that 1 and 2 report them.
#
# usage: scripts/check-layers.sh [--objs DIR] [--root DIR] [--self-test]
# Exit 0 if the rule holds, 1 with the violations listed.
set -uo pipefail

LAYERS=(base host kvm cpu vmm workload)
root=$(cd "$(dirname "$0")/.." && pwd)
objs=""
self_test=0
while [ $# -gt 0 ]; do
	case "$1" in
	--objs) objs=$2; shift 2 ;;
	--root) root=$2; shift 2 ;;
	--self-test) self_test=1; shift ;;
	*) echo "usage: $0 [--objs DIR] [--root DIR] [--self-test]" >&2; exit 2 ;;
	esac
done
CC=${CC:-cc}

rank() {
	local i=0
	for l in "${LAYERS[@]}"; do
		[ "$l" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
	echo -1
}

# The layer of a public header (include/tandem/<name>.h).
header_layer() {
	case "$1" in
	types.h|config.h) echo base ;;
	host.h|mmu_notifier.h|pgtable.h) echo host ;;
	kvm.h) echo kvm ;;
	cpu.h|cpu_rseq.h|riscv.h) echo cpu ;;
	vmm.h|virt.h|clockdev.h) echo vmm ;;
	workload.h) echo workload ;;
	*) echo unknown ;;
	esac
}

# 1. and 3a. Includes. Prints one line per violation.
check_includes() {
	local r=$1 f inc own target
	for own in "${LAYERS[@]}"; do
		[ -d "$r/src/$own" ] || continue
		while IFS= read -r f; do
			while IFS= read -r inc; do
				case "$inc" in
				tandem/*) target=$(header_layer "${inc#tandem/}") ;;
				*/*) target=${inc%%/*} ;;
				*) target=$own ;;          # same folder
				esac
				if [ "$target" = unknown ]; then
					echo "${f#$r/}: includes \"$inc\": a public header no layer owns (add it to header_layer)"
				elif [ "$(rank "$target")" -lt 0 ]; then
					echo "${f#$r/}: includes \"$inc\" from $target/, which is not a library layer"
				elif [ "$(rank "$target")" -gt "$(rank "$own")" ]; then
					echo "${f#$r/}: includes \"$inc\": $own may not depend on $target (above it)"
				fi
			done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
		done < <(find "$r/src/$own" -name '*.[ch]' | sort)
	done
	for f in "$r"/include/tandem/*.h; do
		own=$(header_layer "$(basename "$f")")
		while IFS= read -r inc; do
			case "$inc" in
			tandem/*) ;;
			*) echo "${f#$r/}: includes \"$inc\": a public header may include only <system> and \"tandem/\" headers"; continue ;;
			esac
			target=$(header_layer "${inc#tandem/}")
			if [ "$own" = unknown ] || [ "$target" = unknown ]; then
				echo "${f#$r/}: \"$inc\": a public header no layer owns (add it to header_layer)"
			elif [ "$(rank "$target")" -gt "$(rank "$own")" ]; then
				echo "${f#$r/}: includes \"$inc\": $own may not depend on $target (above it)"
			fi
		done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
	done
}

# 2. Calls, over the objects under $1 (laid out as src/<layer>/...o).
check_calls() {
	local o=$1 tmp l sym def
	tmp=$(mktemp -d)
	for l in "${LAYERS[@]}"; do
		[ -d "$o/src/$l" ] || continue
		find "$o/src/$l" -name '*.o' -print0 | xargs -0 -r nm -g --defined-only 2>/dev/null |
			awk -v l="$l" 'NF >= 3 { print $3, l }' >>"$tmp/defs"
		find "$o/src/$l" -name '*.o' | sort | while IFS= read -r obj; do
			nm -u "$obj" | awk -v f="${obj#$o/}" -v l="$l" '{ print $NF, l, f }'
		done >>"$tmp/uses"
	done
	touch "$tmp/defs" "$tmp/uses"
	sort -u "$tmp/defs" -o "$tmp/defs"
	# use: symbol layer file; def: symbol layer
	awk -v order="${LAYERS[*]}" '
		BEGIN { n = split(order, a, " "); for (i = 1; i <= n; i++) rank[a[i]] = i }
		NR == FNR { def[$1] = $2; next }
		($1 in def) && rank[def[$1]] > rank[$2] {
			printf "%s: calls %s, defined in %s/ (above %s/)\n", $3, $1, def[$1], $2
		}' "$tmp/defs" "$tmp/uses" | sort -u
	rm -rf "$tmp"
}

# 3b. Each public header on its own.
check_headers_alone() {
	local r=$1 f
	for f in "$r"/include/tandem/*.h; do
		printf '#include "tandem/%s"\n' "$(basename "$f")" |
			$CC -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only \
				-I"$r/include" -x c - 2>&1 >/dev/null | head -3 |
			sed "s|^|${f#$r/} alone: |"
	done
}

run_checks() {
	local r=$1 o=$2 out
	out=$(check_includes "$r"; [ -n "$o" ] && check_calls "$o"; check_headers_alone "$r")
	if [ -n "$out" ]; then
		echo "$out"
		return 1
	fi
	return 0
}

if [ "$self_test" = 1 ]; then
	# Plant one violation of each kind in a scratch copy; each must be caught.
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
	cp -r "$root/src" "$root/include" "$scratch/"
	fail=0
	printf '#include "kvm/kvm_host.h"\n' >>"$scratch/src/host/mm.c"
	out=$(check_includes "$scratch")
	if ! grep -q 'src/host/mm.c: includes "kvm/kvm_host.h"' <<<"$out"; then
		echo "self-test: an upward include (host -> kvm) was not reported"; fail=1
	fi
	cp "$root/src/host/mm.c" "$scratch/src/host/mm.c"
	printf '#include "tandem/workload.h"\n' >>"$scratch/include/tandem/kvm.h"
	out=$(check_includes "$scratch")
	if ! grep -q 'include/tandem/kvm.h: includes "tandem/workload.h"' <<<"$out"; then
		echo "self-test: an upward public include (kvm.h -> workload.h) was not reported"; fail=1
	fi
	# Calls: a host object that calls a kvm function, beside a kvm object
	# that defines it.
	mkdir -p "$scratch/o/src/host" "$scratch/o/src/kvm"
	printf 'int kvm_fn(void);\nint host_fn(void) { return kvm_fn(); }\n' >"$scratch/h.c"
	printf 'int kvm_fn(void) { return 1; }\n' >"$scratch/k.c"
	$CC -c "$scratch/h.c" -o "$scratch/o/src/host/h.o" && $CC -c "$scratch/k.c" -o "$scratch/o/src/kvm/k.o"
	if ! check_calls "$scratch/o" | grep -q 'src/host/h.o: calls kvm_fn, defined in kvm/'; then
		echo "self-test: an upward call (host -> kvm) was not reported"; fail=1
	fi
	printf 'int host_fn(void);\nint kvm_fn(void) { return host_fn(); }\n' >"$scratch/k.c"
	$CC -c "$scratch/k.c" -o "$scratch/o/src/kvm/k.o"
	printf 'int host_fn(void) { return 1; }\n' >"$scratch/h.c"
	$CC -c "$scratch/h.c" -o "$scratch/o/src/host/h.o"
	if [ -n "$(check_calls "$scratch/o")" ]; then
		echo "self-test: a downward call (kvm -> host) was reported"; fail=1
	fi
	[ "$fail" = 0 ] && echo "check-layers self-test: upward includes and calls are caught"
	exit $fail
fi

if run_checks "$root" "$objs"; then
	echo "layers: base < host < kvm < cpu < vmm < workload: every include and call runs down"
	exit 0
fi
echo "layers: the rule above was broken (DESIGN.md, 'The layers')" >&2
exit 1
