// Splits a line into words the way the Globus command line splits the lines
// of its batch files: Python's shlex.split(line, comments=True), which
// follows POSIX shell quoting with a few differences of its own.
//
//  - Words are separated by runs of space, tab, carriage return or newline.
//    No other byte is a separator.
//  - Outside quotes, a backslash makes the next byte part of the word,
//    whatever it is.
//  - Inside single quotes every byte is literal, up to the closing quote.
//  - Inside double quotes a backslash escapes only '"' and '\'; before any
//    other byte the backslash stays in the word ("\$" gives \$, unlike a
//    POSIX shell).
//  - An unquoted, unescaped '#' starts a comment that runs to the end of
//    the line, even in the middle of a word: "a#b c" gives the one word "a".
//  - Quoted text, even empty, makes a word: "'' x" gives "" and "x".
//  - A quote left open, or a backslash as the last byte (outside single
//    quotes), is an error.
//
// Bytes are handled one at a time; every special byte is ASCII, so UTF-8
// text splits as it would as a Python str.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

struct ShellWords {
  std::vector<std::string> words;
  // Set when the line cannot be split; `words` then holds what was read
  // before the fault.
  std::optional<std::string> error;
  // A quote or a backslash was consumed: the line was written with shell
  // quoting in mind.
  bool used_quoting = false;
  // The comment began with a '#' glued to the end of a word ("a#b"): the
  // rest of that word was dropped.
  bool comment_in_word = false;
};

// Splits `line` (without its trailing newline) into `out`, replacing what
// `out` held. Returns false, with out->error set, when the line is malformed.
bool SplitShellWords(std::string_view line, ShellWords* out);

}  // namespace ferry
