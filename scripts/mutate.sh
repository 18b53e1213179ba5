#!/usr/bin/env bash
# mutate.sh - prove that every protocol step has a test that fails without it.
#
# Each mutation in scripts/mutations.txt removes (or disarms) one step of a
# protocol -- a snapshot, a re-check, a wait, a zap, a flush, a barrier --
# in a scratch copy of the tree. The script builds the copy's test suites
# (the default build, debug, unless the mutation names another variant),
# runs them, and reports the mutation KILLED if any test fails (or a suite
# times out: a hang is a failure too), SURVIVED if every test passes. A
# surviving mutation is a step no test guards. Exit 0 iff none survived.
#
# usage: scripts/mutate.sh [--list] [--only NAME[,NAME...]] [--keep DIR]
#                          [--timeout SECS] [--suites LIST] [--first]
#
# --first: stop a mutation's suites at the first that fails (a verdict
# sooner; the KILLED line then names that suite only).
#
# mutations.txt format, one block per mutation:
#   @ name                   a short name
#   # text                   why the step is there (free text; shown)
#   variant: debug|tsan|asan (optional; default debug)
#   suites: a,b,c            (optional) test binaries to run; default: all
#                            test_* of the variant (stress_* only if named)
#   file: path               a file to mutate; then its hunk:
#   - line                   lines to find, verbatim (consecutive, once)
#   + line                   what replaces them (none: deleted)
#                            (more file: lines and hunks may follow: one
#                            mutation may need two edits, e.g. a lock and
#                            its unlock)
# A mutation that does not build is BROKEN, not killed: fix the list.
# Blocks are separated by blank lines. A '-' block that does not occur
# exactly once is an error: the list is kept in step with the code.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
list="$root/scripts/mutations.txt"
only=""
keep=""
timeout_s=300
suites_override=""
first=""
mode=run
while [ $# -gt 0 ]; do
	case "$1" in
	--list) mode=list; shift ;;
	--only) only=",$2,"; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--suites) suites_override=$2; shift 2 ;;
	--first) first=1; shift ;;
	*) sed -n '2,33p' "$0" >&2; exit 2 ;;
	esac
done
command -v perl >/dev/null || { echo "mutate.sh needs perl" >&2; exit 2; }

# Split the list into one directory per mutation: name, file, variant,
# suites, old, new, why.
work=$(mktemp -d)
trap '[ -z "$keep" ] && rm -rf "$work"' EXIT
perl -e '
	my ($list, $out) = @ARGV; my $n = 0; my $cur; mkdir $out;
	sub put { my ($p, $v) = @_; open(my $o, ">", $p) or die "$p: $!"; print $o $v; close $o; }
	sub flush { return unless $cur; my $d = sprintf("%s/%03d", $out, $n++); mkdir $d;
		for my $k (qw(name variant suites why)) { put("$d/$k", $cur->{$k} // ""); }
		my $h = 0;
		for my $hk (@{$cur->{hunks}}) {
			put("$d/hunk$h.file", $hk->{file}); put("$d/hunk$h.old", $hk->{old} // "");
			put("$d/hunk$h.new", $hk->{new} // ""); $h++; }
		put("$d/file", join(" ", map { $_->{file} } @{$cur->{hunks}}));
		$cur = undef; }
	open(my $fh, "<", $list) or die "$list: $!";
	while (my $l = <$fh>) {
		chomp $l;
		if ($l =~ /^@ (\S+)/) { flush(); $cur = { name => $1, variant => "debug", hunks => [] }; next; }
		next unless $cur;
		if ($l =~ /^# ?(.*)/) { $cur->{why} .= "$1\n"; }
		elsif ($l =~ /^file: (\S+)/) { push @{$cur->{hunks}}, { file => $1 }; }
		elsif ($l =~ /^variant: (\S+)/) { $cur->{variant} = $1; }
		elsif ($l =~ /^suites: (\S+)/) { $cur->{suites} = $1; }
		elsif ($l =~ /^- ?(.*)$/) { $cur->{hunks}[-1]{old} .= "$1\n"; }
		elsif ($l =~ /^\+ ?(.*)$/) { $cur->{hunks}[-1]{new} .= "$1\n"; }
		elsif ($l =~ /^\s*$/) { }
		else { die "mutations.txt: cannot read: $l\n"; }
	}
	flush();
' "$list" "$work/m" || exit 2

if [ "$mode" = list ]; then
	for d in "$work"/m/*; do
		printf '%-34s %-28s %s\n' "$(cat "$d/name")" "$(cat "$d/file")" "$(head -1 "$d/why")"
	done
	exit 0
fi

# One scratch copy, built once per variant; each mutation edits one file,
# rebuilds what depends on it, runs the suites, and puts the file back.
scratch=${keep:-$work/tree}
mkdir -p "$scratch"
(cd "$root" && git ls-files -z | xargs -0 tar cf - 2>/dev/null) | (cd "$scratch" && tar xf -)
for d in "$work"/m/*; do
	for h in "$d"/hunk*.file; do
		f="$scratch/$(cat "$h")"
		[ -f "$f" ] || { echo "mutation $(cat "$d/name"): no file $(cat "$h")" >&2; exit 2; }
		# Every '-' block must occur exactly once before any time is spent.
		perl -0777 -e '
			my ($f, $old) = @ARGV; local $/; open(my $a, "<", $f) or die; my $s = <$a>;
			open(my $b, "<", $old) or die; my $o = <$b>;
			my $c = () = $s =~ /\Q$o\E/g; exit($c == 1 ? 0 : 1);' "$f" "${h%.file}.old" ||
			{ echo "mutation $(cat "$d/name"): its '-' lines do not occur exactly once in $(cat "$h")" >&2; exit 2; }
	done
done

apply() {     # file old new
	perl -0777 -e '
		my ($f, $old, $new) = @ARGV; local $/;
		open(my $a, "<", $f) or die; my $s = <$a>; close $a;
		open(my $b, "<", $old) or die; my $o = <$b>;
		open(my $c, "<", $new) or die; my $n = <$c> // "";
		$s =~ s/\Q$o\E/$n/ or die "not found\n";
		open($a, ">", $f) or die; print $a $s; close $a;' "$1" "$2" "$3"
}

survived=0
killed=0
broken=0
results=()
for d in "$work"/m/*; do
	name=$(cat "$d/name")
	[ -n "$only" ] && [[ "$only" != *",$name,"* ]] && continue
	v=$(cat "$d/variant")
	for h in "$d"/hunk*.file; do
		cp "$scratch/$(cat "$h")" "${h%.file}.orig"
		apply "$scratch/$(cat "$h")" "${h%.file}.old" "${h%.file}.new"
	done
	# Build this variant's tests (only what the file touches recompiles).
	if ! make -C "$scratch" -j2 --no-print-directory "tests-build-$v" >"$d/build.log" 2>&1; then
		verdict="BROKEN: does not build (fix the mutation)"
		broken=$((broken + 1))
	else
		suites=${suites_override:-$(cat "$d/suites")}
		if [ -z "$suites" ]; then
			bins=$(cd "$scratch/build/$v/tests" && find . -type f -name 'test_*' -perm -u+x | sort)
		else
			bins=$(cd "$scratch/build/$v/tests" && for s in ${suites//,/ }; do
				find . -type f -name "$s" -perm -u+x; done)
		fi
		verdict="SURVIVED"
		failing=""
		for b in $bins; do
			(cd "$scratch" && timeout "$timeout_s" "build/$v/tests/$b") >"$d/$(basename "$b").log" 2>&1
			rc=$?
			if [ "$rc" -ne 0 ]; then
				log="$d/$(basename "$b").log"
				# Which tests failed: cmocka's summary lines, else how
				# the binary ended (a BUG's abort, a timeout).
				which=$(sed -n 's/^\[  FAILED  \] \([a-z_0-9]*\)$/\1/p' "$log" | sort -u | paste -sd, -)
				[ "$rc" -eq 124 ] && which="${which:+$which,}timeout"
				[ -z "$which" ] && which=$(grep -m1 -o 'BUG at [^:]*:[0-9]*' "$log" || echo "exit $rc")
				failing="$failing $(basename "$b")[$which]"
				[ -n "$first" ] && break
			fi
		done
		if [ -n "$failing" ]; then
			verdict="KILLED by$failing"
			killed=$((killed + 1))
		else
			survived=$((survived + 1))
		fi
	fi
	# Last hunk first: two hunks in one file saved it twice.
	for h in $(ls -r "$d"/hunk*.file); do
		cp "${h%.file}.orig" "$scratch/$(cat "$h")"
	done
	line=$(printf '%-34s %s' "$name" "$verdict")
	results+=("$line")
	echo "$line"
done
echo
echo "mutations: $killed killed, $survived survived, $broken broken"
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
