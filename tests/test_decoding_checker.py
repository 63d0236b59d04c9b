"""Tests of the incremental SQL prefix checker: hand-written cases and Spider gold queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graphix.decoding import PrefixChecker, RejectReason
from graphix.decoding.sql_lexer import NUMBER, STRING, SYMBOL, WORD, LexerState, finish, lex
from graphix.schema import Column, Schema, Table

FIXTURES = Path(__file__).parent / "fixtures"


def make_schema(db_id: str, tables: dict[str, list[str]]) -> Schema:
    return Schema(db_id, tuple(
        Table(name, name, tuple(Column(c, c, "text", name) for c in columns))
        for name, columns in tables.items()
    ))


MUSIC = make_schema("music", {
    "singer": ["singer_id", "name", "country", "age", "is_male"],
    "concert": ["concert_id", "concert_name", "stadium_id", "year"],
    "singer_in_concert": ["concert_id", "singer_id"],
    "stadium": ["stadium_id", "name", "capacity", "location"],
    "cast": ["singer_id", "role"],
})


@pytest.fixture(scope="module")
def music() -> PrefixChecker:
    return PrefixChecker(MUSIC)


@pytest.fixture(scope="module")
def music_loose() -> PrefixChecker:
    return PrefixChecker(MUSIC, strict=False)


def character_prefixes_accepted(checker: PrefixChecker, text: str) -> str | None:
    """Feed `text` one character at a time; return the first rejection message, if any."""
    state = checker.initial()
    for position, char in enumerate(text):
        state = checker.feed(state, char)
        if not state.ok:
            return f"rejected at {position} ({text[:position + 1]!r}): {state.rejection.message}"
    if not checker.is_complete(state):
        return "not complete at the end"
    return None


# ---------------------------------------------------------------------------- lexer


def lex_all(text: str) -> list:
    tokens = []
    finish(lex(LexerState(), text, tokens.append), tokens.append)
    return tokens


def test_lexer_ignores_spacing():
    assert lex_all("count(*)") == lex_all("count ( * )")
    assert lex_all("t1.name") == [(WORD, "t1"), (SYMBOL, "."), (WORD, "name")]
    assert lex_all("T1 . Name") == [(WORD, "t1"), (SYMBOL, "."), (WORD, "name")]


def test_lexer_reads_literals_and_operators():
    assert lex_all("a>=-1.5") == [(WORD, "a"), (SYMBOL, ">="), (SYMBOL, "-"), (NUMBER, "1.5")]
    assert lex_all("'it''s'") == [(STRING, "it's")]
    assert lex_all('"Say ""hi"""') == [(STRING, 'Say "hi"')]
    assert lex_all("a != b<>c") == [(WORD, "a"), (SYMBOL, "!="), (WORD, "b"), (SYMBOL, "<>"),
                                    (WORD, "c")]


def test_lexer_keeps_string_case():
    assert lex_all("WHERE x = 'New York'") == [(WORD, "where"), (WORD, "x"), (SYMBOL, "="),
                                               (STRING, "New York")]


def test_lexer_state_carries_partial_tokens():
    tokens = []
    state = lex(LexerState(), "sel", tokens.append)
    assert tokens == []
    state = lex(state, "ect 'a b", tokens.append)
    assert tokens == [(WORD, "select")]
    state = lex(state, "''c' ", tokens.append)
    assert tokens == [(WORD, "select"), (STRING, "a b'c")]
    assert state == LexerState()


# ---------------------------------------------------------------------------- valid queries

VALID = [
    "select count ( * ) from singer",
    "select name , country , age from singer order by age desc",
    "select distinct country from singer where age > 20",
    "select t1.name , count ( * ) from singer as t1 join singer_in_concert as t2 "
    "on t1.singer_id = t2.singer_id group by t1.name having count ( * ) >= 2",
    "select t2.concert_name from singer_in_concert as t1 join concert as t2 "
    "on t1.concert_id = t2.concert_id where t2.year = '2014' order by t2.year limit 1",
    "select name from singer where singer_id not in ( select singer_id from singer_in_concert )",
    "select name from singer where age between 20 and 30 and country = 'France'",
    "select name from singer where name like '%a%' or country is not null",
    "select country from singer intersect select location from stadium",
    "select country from singer union all select location from stadium order by country",
    "select name from singer except select name from stadium",
    "select avg ( age ) , min ( age ) , max ( age ) from singer where is_male = 'T'",
    "select t.country from ( select country , count ( * ) as n from singer group by country ) "
    "as t where t.n > 1",
    "select * from ( select name from singer ) where name = 'x'",
    "select count ( distinct country ) from singer",
    "select name from singer as s where exists ( select 1 from singer_in_concert as c "
    "where c.singer_id = s.singer_id )",
    "select name from singer where age > ( select avg ( age ) from singer )",
    "select t1.* , t2.year from singer as t1 , concert as t2 where t1.singer_id = - 1",
    "select country , count ( * ) as cnt from singer group by country order by cnt desc "
    "limit 3 offset 1",
    "select role from cast where singer_id = 1",
    "select concert_name from concert where year >= 2014 and not year = 2015",
    "select name from singer where country = \"It's \"\"quoted\"\"\"",
    "select name from singer where age is null and singer_id in ( 1 , 2 , 3 )",
    "select s.name from singer as s join stadium as t on s.country = t.location",
    "select t1.name from singer as t1 left join singer_in_concert as t2 "
    "on t1.singer_id = t2.singer_id where t2.concert_id is null",
    "select upper ( name ) , length ( country ) , round ( age / 2.0 , 1 ) from singer",
    "select name from singer where country not like 'A%' and age not between 1 and 2",
    "select 1",
    "select t1.name from singer as t1 join concert as t2 on t1.singer_id = t3.singer_id "
    "join singer_in_concert as t3 on t2.concert_id = t3.concert_id",
    "select name from singer where ( age = 3 ) = ( country = 'France' )",
    "select name from singer where age + 1 = 3 * 2 or age - 1 < 5 and country != 'x'",
    "select max ( age , 3 ) , min ( singer_id , age , 1 ) from singer",
    "select name from singer where age > ( select max ( age ) from singer where age < 40 )",
    "select name , age from singer union select * from stadium",
    "select name as sname_12 from singer as singer_1",
]


@pytest.mark.parametrize("sql", VALID)
def test_checker_accepts_valid_query(music_loose, sql):
    assert character_prefixes_accepted(music_loose, f"music | {sql}") is None


@pytest.mark.parametrize("sql", [
    "select t1.name from singer as t1 join concert as t9 on t1.singer_id = t9.concert_id",
    "select t7.name from singer as t7",
    "select name from singer where age + 1 = age or age = - age or age = 2 * age",
    "select t1.name from singer as t1 join singer as t2 on t1.age = t1.age",
    "select ( select max ( age ) from singer ) , ( select min ( age ) from singer ) , age "
    "from singer union select name , name , age from singer",
    "select name , age , name from singer",
    "select t1.name from singer as t1 join singer as t2 on t1.age = t2.age",
])
def test_default_checker_accepts_numbered_aliases(music, sql):
    assert character_prefixes_accepted(music, f"music | {sql}") is None


@pytest.mark.parametrize("sql", [sql for sql in VALID if re.search(r" as (?!t\d)", sql)])
def test_default_checker_rejects_other_aliases(music, sql):
    assert character_prefixes_accepted(music, f"music | {sql}") is not None


@pytest.mark.parametrize("sql", VALID[:6])
def test_checker_ignores_spacing(music, sql):
    compact = re.sub(r"\s*([(),.])\s*", r"\1", sql)
    assert music.accepts_query(f"music|{compact}")
    assert music.accepts_query(f"  music  |  {sql.upper()}  ")


def test_checker_without_db_id():
    checker = PrefixChecker(MUSIC, with_db_id=False)
    assert checker.accepts_query("select name from singer")
    assert not checker.accepts_prefix("music | select name from singer")


# ---------------------------------------------------------------------------- invalid prefixes


def load_invalid_prefixes() -> list[tuple[str, str, str]]:
    rows = []
    lines = (FIXTURES / "invalid_prefixes.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines:
        if not line.strip() or line.startswith("#") or line.startswith("reason\t"):
            continue
        reason, prefix, case = line.split("\t")
        rows.append((reason, prefix, case))
    return rows


INVALID = load_invalid_prefixes()


def test_invalid_prefix_table_is_large():
    assert len(INVALID) >= 30
    assert {reason for reason, _, _ in INVALID} == {reason.value for reason in RejectReason}


@pytest.mark.parametrize("reason, prefix, case", INVALID, ids=[row[2] for row in INVALID])
def test_checker_rejects_invalid_prefix(music, reason, prefix, case):
    state = music.check(prefix)
    assert not state.ok, f"accepted {prefix!r} ({case})"
    assert state.rejection.reason.value == reason, state.rejection.message


@pytest.mark.parametrize("reason, prefix, case", INVALID, ids=[row[2] for row in INVALID])
def test_checker_rejects_invalid_prefix_fed_in_pieces(music, reason, prefix, case):
    state = music.initial()
    for start in range(0, len(prefix), 3):
        state = music.feed(state, prefix[start:start + 3])
    # A shorter prefix may already be invalid, for another reason.
    assert not state.ok


@pytest.mark.parametrize("prefix", [
    "music | select name from sing",
    "music | select name from singer where na",
    "music | select t1.name from singer as t1 where t1.na",
    "music | select coun",
    "music | select name from singer where name = 'unfinished str",
    "music | select name from singer where age <",
    "music | select name from singer where age !",
    "music | select name from singer where ( age > 3",
    "music | select name from singer where age between 1",
    "mus",
])
def test_checker_accepts_incomplete_prefix(music, prefix):
    state = music.check(prefix)
    assert state.rejection is None, state.rejection.message
    assert not music.is_complete(state)


@pytest.mark.parametrize("sql", [
    "select name from singer where name = 'abc",
    "select name from singer where ( age > 3",
    "select name from",
    "select count ( * ) from singer where",
    "select nme",
    "select t1.name from singer",
])
def test_checker_rejects_incomplete_query(music, sql):
    assert not music.accepts_query(f"music | {sql}")


def test_rejected_state_stays_rejected(music):
    state = music.check("music | select nme from")
    assert not state.ok
    assert music.feed(state, " singer") is state


# ---------------------------------------------------------------------------- Spider gold


def normalize_gold(sql: str) -> str:
    """Lowercase outside quotes, space out parentheses and commas, drop the semicolon."""
    parts = re.split(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""", sql.strip().rstrip(";").strip())
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([(),])", r" \1 ", parts[i].lower())
    return re.sub(r"\s+", " ", "".join(parts)).strip()


# Gold queries that are invalid for SQLite itself, by file and position in it.
UNSUPPORTED_GOLD = {
    ("train_spider.json", 3153): "names table ref_company_types, absent from its schema",
    ("train_spider.json", 4513): "ORDER BY and LIMIT before INTERSECT (SQLite rejects it)",
    ("train_spider.json", 4514): "ORDER BY and LIMIT before INTERSECT (SQLite rejects it)",
}


def gold_examples(spider: Path, file_name: str):
    schemas = Schema.load_spider_tables(spider / "tables.json")
    checkers = {}
    for position, example in enumerate(json.loads((spider / file_name).read_text())):
        db_id = example["db_id"]
        if db_id not in checkers:
            checkers[db_id] = PrefixChecker(schemas[db_id])
        yield position, checkers[db_id], f"{db_id} | {normalize_gold(example['query'])}"


def sweep(spider: Path, file_name: str, character_level: bool) -> dict:
    failures = {}
    for position, checker, text in gold_examples(spider, file_name):
        if character_level:
            problem = character_prefixes_accepted(checker, text)
        else:
            state = checker.check(text)
            problem = None if checker.is_complete(state) else (
                state.rejection.message if state.rejection else "not complete")
        if problem is not None:
            failures[(file_name, position)] = problem
    return failures


def expected_failures(file_name: str) -> set:
    return {key for key in UNSUPPORTED_GOLD if key[0] == file_name}


@pytest.mark.spider
def test_checker_accepts_dev_gold_prefixes(spider):
    failures = sweep(spider, "dev.json", character_level=True)
    assert set(failures) == expected_failures("dev.json"), failures


@pytest.mark.spider
@pytest.mark.parametrize("file_name", ["train_spider.json", "train_others.json"])
def test_checker_accepts_train_gold_queries(spider, file_name):
    failures = sweep(spider, file_name, character_level=False)
    assert set(failures) == expected_failures(file_name), failures


@pytest.mark.slow
@pytest.mark.spider
@pytest.mark.parametrize("file_name", ["train_spider.json", "train_others.json"])
def test_checker_accepts_train_gold_prefixes(spider, file_name):
    failures = sweep(spider, file_name, character_level=True)
    assert set(failures) == expected_failures(file_name), failures


@pytest.mark.spider
def test_unsupported_gold_fails_in_sqlite(spider):
    import sqlite3

    examples = json.loads((spider / "train_spider.json").read_text())
    for (file_name, position), why in UNSUPPORTED_GOLD.items():
        example = examples[position]
        database = spider / "database" / example["db_id"] / f"{example['db_id']}.sqlite"
        connection = sqlite3.connect(database)
        try:
            with pytest.raises(sqlite3.OperationalError):
                connection.execute(example["query"])
        finally:
            connection.close()


@pytest.mark.parametrize("sql", [
    "select name , name , name from singer",
    "select name from singer where age = age",
    "select name from singer as t1 join concert as t1",
    "select s.name from singer as s where s.age > 3 and s.age > 3",
])
def test_loose_checker_follows_sqlite(sql):
    loose = PrefixChecker(MUSIC, with_db_id=False, strict=False)
    assert loose.accepts_query(sql)
    assert not PrefixChecker(MUSIC, with_db_id=False).accepts_query(sql)


def test_table_aliased_by_own_name():
    checker = PrefixChecker(make_schema("odd", {"t1": ["id", "name"], "t2": ["id"]}))
    assert checker.accepts_query("odd | select t1.name from t1 as t1 join t2 as t2 "
                                 "on t1.id = t2.id")


def test_implicit_aliases_are_optional():
    sql = "music | select s.name from singer s join stadium t on s.country = t.location"
    assert not PrefixChecker(MUSIC).accepts_prefix(sql)
    assert PrefixChecker(MUSIC, implicit_aliases=True, strict=False).accepts_query(sql)


def test_keyword_table_name_rejected():
    checker = PrefixChecker(make_schema("shop", {"order": ["id"], "end": ["id"]}),
                            with_db_id=False)
    # SQLite reads `from end` as a table name but `from order` as a syntax error.
    assert checker.accepts_query("select id from end")
    assert not checker.check("select id from order").ok
