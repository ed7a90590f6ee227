#include "manifest/shell_split.h"

#include <fmt/format.h>

namespace ferry {
namespace {

bool IsSeparator(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string NoClosingQuote(char quote, size_t at) {
  return fmt::format("no closing quotation: the {} at byte {} is never closed",
                     quote, at + 1);
}

std::string NoEscapedCharacter() {
  return "no escaped character: the line ends with a backslash";
}

// Appends the text of the single-quoted span whose opening quote is at
// `*i`, and moves `*i` past its closing quote.
bool ReadSingleQuoted(std::string_view line, size_t* i, std::string* word,
                      ShellWords* out) {
  size_t close = line.find('\'', *i + 1);
  if (close == std::string_view::npos) {
    out->error = NoClosingQuote('\'', *i);
    return false;
  }
  word->append(line.substr(*i + 1, close - *i - 1));
  *i = close + 1;
  return true;
}

// Same for a double-quoted span, where a backslash escapes only '"' and
// '\' and is kept before any other byte.
bool ReadDoubleQuoted(std::string_view line, size_t* i, std::string* word,
                      ShellWords* out) {
  for (size_t j = *i + 1; j < line.size(); ++j) {
    char c = line[j];
    if (c == '"') {
      *i = j + 1;
      return true;
    }
    if (c != '\\') {
      word->push_back(c);
      continue;
    }
    if (j + 1 == line.size()) {
      out->error = NoEscapedCharacter();
      return false;
    }
    char next = line[++j];
    if (next != '"' && next != '\\') word->push_back('\\');
    word->push_back(next);
  }
  out->error = NoClosingQuote('"', *i);
  return false;
}

// Reads one word that starts at `*i` (not a separator, not '#'), up to the
// separator or comment that ends it.
bool ReadWord(std::string_view line, size_t* i, std::string* word,
              ShellWords* out) {
  while (*i < line.size()) {
    char c = line[*i];
    if (IsSeparator(c)) return true;
    if (c == '#') {
      out->comment_in_word = true;
      *i = line.size();
      return true;
    }
    if (c == '\\') {
      out->used_quoting = true;
      if (*i + 1 == line.size()) {
        out->error = NoEscapedCharacter();
        return false;
      }
      word->push_back(line[*i + 1]);
      *i += 2;
      continue;
    }
    if (c == '\'' || c == '"') {
      out->used_quoting = true;
      bool ok = c == '\'' ? ReadSingleQuoted(line, i, word, out)
                          : ReadDoubleQuoted(line, i, word, out);
      if (!ok) return false;
      continue;
    }
    word->push_back(c);
    ++*i;
  }
  return true;
}

}  // namespace

bool SplitShellWords(std::string_view line, ShellWords* out) {
  out->words.clear();
  out->error.reset();
  out->used_quoting = false;
  out->comment_in_word = false;

  size_t i = 0;
  for (;;) {
    while (i < line.size() && IsSeparator(line[i])) ++i;
    // A '#' that starts a word starts a comment instead.
    if (i == line.size() || line[i] == '#') return true;
    std::string& word = out->words.emplace_back();
    if (!ReadWord(line, &i, &word, out)) return false;
  }
}

}  // namespace ferry
