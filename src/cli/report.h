/* SPDX-License-Identifier: MIT */
/*
 * report.h - a summary's metrics described once, in a table: each row
 * gives the JSON key, the text label, where the value lives in the struct
 * the table describes, its kind and the text that follows it. The text
 * printer and the JSON printer both walk the same rows, so a figure cannot
 * be in one output and missing from, or different in, the other unless its
 * row says so (REPORT_JSON or REPORT_TEXT only).
 *
 * A text row is "<indent><label padded> <value>[<note>]". A note may name
 * other figures of the same table:
 *   {key}        that row's value (a JSON-only row that belongs in this line)
 *   {key?text}   text, if that row's value is not 0
 *   {/s}         this row's value per second of report_style.seconds ("2.31M")
 *   {MiB}        this row's value, a number of pages, in MiB ("12.5")
 * A JSON row is "key": value; an array row is "key": {"<name>": value, ...}.
 */
#ifndef TANDEM_CLI_REPORT_H
#define TANDEM_CLI_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum report_kind {
	REPORT_U64,             /* uint64_t */
	REPORT_INT,             /* int */
	REPORT_F64,             /* double: .prec decimals */
	REPORT_U64_ARRAY,       /* uint64_t[]: elements index[0..nr) (or 0..nr), named
				 * by name(); in text a row each, labelled by name */
};

/* report_field.in: which outputs show the row. */
#define REPORT_JSON (1u << 0)
#define REPORT_TEXT (1u << 1)
#define REPORT_BOTH (REPORT_JSON | REPORT_TEXT)

struct report_field {
	const char *key;                /* JSON key; notes name the row by it */
	const char *label;              /* text label */
	enum report_kind kind;
	size_t offset;                  /* of the value in the described struct */
	unsigned int in;                /* REPORT_JSON and/or REPORT_TEXT */
	const char *note;               /* text after the value; placeholders above */
	unsigned int when;              /* text only if report_style.show has one of
					 * these bits (0: always) */
	int prec;                       /* REPORT_F64: decimals */
	unsigned int nr;                /* REPORT_U64_ARRAY: elements shown */
	const unsigned int *index;      /* ... which ones, in order (NULL: 0..nr) */
	const char *(*name)(unsigned int i);    /* ... element i's key and label */
};

struct report_table {
	const struct report_field *fields;
	unsigned int nr;
};
#define REPORT_TABLE(a) { .fields = (a), .nr = sizeof(a) / sizeof((a)[0]) }

/* The value of a row: member of type `type`. */
#define REPORT_AT(type, member) .offset = offsetof(type, member)

struct report_style {
	unsigned int indent;            /* spaces before the label */
	unsigned int label_width;       /* labels padded to this, then a space */
	unsigned int value_width;       /* values right-aligned in this; 0: none */
	double seconds;                 /* what {/s} divides by (0: 1) */
	unsigned int show;              /* enables rows with report_field.when */
};

/* The text rows of table t over the struct at base. */
void report_text(FILE *f, const struct report_style *st, const struct report_table *t,
		 const void *base);
/* Its JSON members, "key": value, separated by ", ", without braces. */
void report_json(FILE *f, const struct report_table *t, const void *base);

/* 1234567 -> "1.23M", 12345 -> "12.3k", 123 -> "123". The result lives in
 * one of 8 static buffers, reused in turn: up to 8 in one printf. */
const char *report_human(double v);
/* s as a JSON string literal (quotes included). */
void json_print_string(FILE *f, const char *s);

#endif
