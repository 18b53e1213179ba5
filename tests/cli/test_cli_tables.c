/* SPDX-License-Identifier: MIT */
/*
 * test_cli_tables.c - the CLI's table machinery on tables of its own: an
 * option table parsed, checked and turned into usage lines (src/cli/opt.c),
 * and a metric table printed as text and JSON (src/cli/report.c). The
 * files under test are included, as the CLI is not part of the library.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/parse.c"
#include "cli/opt.c"
#include "cli/report.c"

/* ---- an option table ---------------------------------------------------- */

struct demo {
	unsigned int count;
	uint64_t bytes, ns;
	const char *path;
	unsigned int color, set;
	long limit;
	bool flag;
};

static void demo_usage(FILE *f)
{
	fputs("usage\n", f);
}

static const struct opt_choice colors[] = {
	{ "red", 1, "the first\nof three" }, { "green", 2, NULL }, { "blue", 4, "last" },
};

static bool color_choice(unsigned int i, struct opt_choice *c)
{
	if (i >= sizeof(colors) / sizeof(colors[0]))
		return false;
	*c = colors[i];
	return true;
}

#define F(m) OPT_FIELD(struct demo, m)

static const struct opt demo_opts[] = {
	{ "count", 'c', OPT_NUM, F(count), .min = 1, .max = 9, .arg = "N",
	  .help = "how many (default {default}; {range})" },
	{ "bytes", 0, OPT_SIZE, F(bytes), .min = 1 << 20, .max = 1ULL << 31, .align = 1 << 20,
	  .align_why = "not whole MiB", .flags = OPT_ZERO_OK, .arg = "SIZE",
	  .help = "size (default {default}; {range})" },
	{ "time", 't', OPT_DURATION, F(ns), .min = 1000000, .max = 60000000000ULL,
	  .range_why = "1ms to 1 minute", .arg = "SECS", .help = "default {default}" },
	{ "path", 0, OPT_PATH, F(path), .arg = "PATH", .help = "where" },
	{ "color", 0, OPT_CHOICE, F(color), .choices = color_choice, .arg = "NAME",
	  .help = "one of them (default {default})" },
	{ "colors", 0, OPT_SET, F(set), .choices = color_choice,
	  .flags = OPT_LIST | OPT_ADD | OPT_ALL_NONE, .arg = "LIST",
	  .help = "some of them:\n{choices}\nor all, or none" },
	{ "a-rather-long-option", 0, OPT_NUM, F(limit), .arg = "N", .help = "long\nhelp" },
	{ "flag", 'f', OPT_FLAG, F(flag), .help = "a switch" },
	{ "help", 'h', OPT_HELP, .help = "this text" },
};

static const struct opt_table demo_table = {
	.cmd = "demo", .opts = demo_opts, .nr = sizeof(demo_opts) / sizeof(demo_opts[0]),
	.help_column = 24, .usage = demo_usage,
};

static const struct demo demo_defaults = {
	.count = 3, .bytes = 64 << 20, .ns = 2500000000ULL, .color = 2,
};

/* Parse the words of line (at most 16) into *d, starting from the defaults. */
static int parse(const char *line, struct demo *d, uint64_t *given)
{
	char buf[256], *argv[17] = { "demo" }, *save = NULL;
	int argc = 1;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	*d = demo_defaults;
	/* The values point into buf: keep none of them. */
	int ret = opt_parse(&demo_table, argc, argv, d, given, NULL);
	d->path = d->path ? "set" : NULL;
	return ret;
}

static void test_opt_values(void **state)
{
	struct demo d;
	uint64_t given;

	assert_int_equal(parse("", &d, &given), 0);
	assert_int_equal(given, 0);
	assert_int_equal(d.count, 3);

	assert_int_equal(parse("-c 7 --bytes 2M -t 250ms --path /x --color blue -f", &d,
			       &given), 0);
	assert_int_equal(d.count, 7);
	assert_int_equal(d.bytes, 2 << 20);
	assert_int_equal(d.ns, 250000000);
	assert_string_equal(d.path, "set");
	assert_int_equal(d.color, 4);
	assert_true(d.flag);
	assert_true(opt_given(&demo_table, given, "count"));
	assert_true(opt_given(&demo_table, given, "flag"));
	assert_false(opt_given(&demo_table, given, "colors"));

	assert_int_equal(parse("--bytes 0 --a-rather-long-option 123456789012", &d, &given), 0);
	assert_int_equal(d.bytes, 0);
	assert_int_equal(d.limit, 123456789012L);

	/* Sets: lists add up across uses, empty items are skipped; all/none. */
	assert_int_equal(parse("--colors red,,blue --colors green", &d, &given), 0);
	assert_int_equal(d.set, 7);
	assert_int_equal(parse("--colors blue --colors none", &d, &given), 0);
	assert_int_equal(d.set, 0);
	assert_int_equal(parse("--colors all", &d, &given), 0);
	assert_int_equal(d.set, 7);

	/* --help prints the usage and stops there: no later error is seen. */
	assert_int_equal(parse("-c 5 -h -c 0", &d, &given), -1);
}

static void test_opt_errors(void **state)
{
	static const char *const bad[] = {
		"-c 0", "-c 10", "-c x", "--bytes 1536K", "--bytes 4G", "--bytes 1T",
		"-t 0", "-t 500us", "-t 61", "--path=", "--color pink", "--colors red,pink",
		"--colors=", "--colors all,red", "--nope", "-z", "--flag=1", "-c", "extra",
	};
	struct demo d;
	uint64_t given;

	assert_int_equal(parse("-t 0.5", &d, &given), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("# %s\n", bad[i]);
		assert_int_equal(parse(bad[i], &d, &given), EXIT_USAGE);
	}
}

static char *capture(void (*fn)(FILE *f, const void *arg), const void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fn(f, arg);
	fclose(f);
	return text;
}

static void usage_of(FILE *f, const void *arg)
{
	opt_usage(f, &demo_table, arg);
}

static void test_opt_usage(void **state)
{
	char *text = capture(usage_of, &demo_defaults);

	assert_string_equal(text,
		"  -c, --count N         how many (default 3; 1..9)\n"
		"      --bytes SIZE      size (default 64M; 1M..2G)\n"
		"  -t, --time SECS       default 2.5\n"
		"      --path PATH       where\n"
		"      --color NAME      one of them (default green)\n"
		"      --colors LIST     some of them:\n"
		"          red          the first\n"
		"                       of three\n"
		"          blue         last\n"
		"                        or all, or none\n"
		"      --a-rather-long-option N\n"
		"                        long\n"
		"                        help\n"
		"  -f, --flag            a switch\n"
		"  -h, --help            this text\n");
	free(text);
}

/* ---- a metric table ----------------------------------------------------- */

struct figures {
	uint64_t ops, fast, pages;
	int check;
	double mean;
	uint64_t by_kind[4];
};

static const char *kind_name(unsigned int k)
{
	static const char *const names[] = { "zero", "one", "two", "three" };

	return names[k];
}

static const unsigned int kinds_shown[] = { 3, 1 };

#define R(m) REPORT_AT(struct figures, m)

static const struct report_field figure_fields[] = {
	{ "ops", "operations", REPORT_U64, R(ops), REPORT_BOTH,
	  .note = "  ({/s}/s; fast {fast}{fast? some fast})" },
	{ "fast", NULL, REPORT_U64, R(fast), REPORT_JSON },
	{ "pages", "pages", REPORT_U64, R(pages), REPORT_BOTH, .note = " ({MiB} MiB)" },
	{ "check", "check", REPORT_INT, R(check), REPORT_BOTH, .when = 1 },
	{ "mean", "mean", REPORT_F64, R(mean), REPORT_TEXT, .prec = 2 },
	{ "kinds", NULL, REPORT_U64_ARRAY, R(by_kind), REPORT_BOTH, .nr = 2,
	  .index = kinds_shown, .name = kind_name },
};

static const struct report_table figure_table = REPORT_TABLE(figure_fields);

static const struct figures figures = {
	.ops = 2500000, .fast = 7, .pages = 512, .check = -3, .mean = 1.5,
	.by_kind = { 10, 11, 12, 13 },
};

static void text_of(FILE *f, const void *arg)
{
	report_text(f, arg, &figure_table, &figures);
}

static void json_of(FILE *f, const void *arg)
{
	report_json(f, &figure_table, &figures);
}

static void test_report(void **state)
{
	const struct report_style st = {
		.indent = 2, .label_width = 12, .value_width = 9, .seconds = 2, .show = 1,
	};
	const struct report_style hide = { .label_width = 10 };
	char *text = capture(text_of, &st);

	assert_string_equal(text,
		"  operations     2500000  (1.25M/s; fast 7 some fast)\n"
		"  pages              512 (2.0 MiB)\n"
		"  check               -3\n"
		"  mean              1.50\n"
		"  three               13\n"
		"  one                 11\n");
	free(text);
	/* No style.show bit: the check row is left out of the text. */
	text = capture(text_of, &hide);
	assert_null(strstr(text, "check"));
	assert_non_null(strstr(text, "operations 2500000  (2.50M/s;"));
	free(text);
	text = capture(json_of, NULL);
	assert_string_equal(text, "\"ops\": 2500000, \"fast\": 7, \"pages\": 512, "
			    "\"check\": -3, \"kinds\": {\"three\": 13, \"one\": 11}");
	free(text);
	assert_string_equal(report_human(999), "999");
	assert_string_equal(report_human(12345), "12.3k");
	assert_string_equal(report_human(3.5e9), "3.50G");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opt_values),
		cmocka_unit_test(test_opt_errors),
		cmocka_unit_test(test_opt_usage),
		cmocka_unit_test(test_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
