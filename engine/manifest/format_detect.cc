// DetectManifestFormat: which format a manifest is written in, judged from
// its first lines. The rules are stated in ferry/manifest.h.
#include <fmt/format.h>

#include "ferry/manifest.h"
#include "manifest/batch.h"
#include "manifest/line_reader.h"
#include "manifest/shell_split.h"

namespace ferry {
namespace {

// Enough lines to see a pattern; few enough that a huge manifest is not
// read twice just to learn its format.
constexpr uint64_t kLinesToJudge = 1000;

// What the lines read so far say about the format.
struct Evidence {
  uint64_t entry_lines = 0;
  bool tab = false;
  uint64_t flag_line = 0;  // first line with a batch flag; 0: none
  std::string flag;
  uint64_t quoting_line = 0;  // first pair of quoted paths; 0: none
  bool all_pairs = true;      // every line reads as a batch line
};

// Whether a line holds an entry in either format: not blank, and not a
// comment line.
bool IsEntryLine(std::string_view line) {
  size_t first = line.find_first_not_of(" \t");
  return first != std::string_view::npos && line[first] != '#';
}

void Observe(std::string_view line, uint64_t number, ShellWords* words,
             Evidence* evidence) {
  ++evidence->entry_lines;
  if (line.find('\t') != std::string_view::npos) evidence->tab = true;

  BatchWords pair;
  bool is_pair = SplitShellWords(line, words) &&
                 !ReadBatchWords(words->words, &pair) &&
                 !words->comment_in_word;
  if (!is_pair) evidence->all_pairs = false;
  if (is_pair && words->used_quoting && evidence->quoting_line == 0) {
    evidence->quoting_line = number;
  }
  if (evidence->flag_line != 0 || words->error) return;
  for (const std::string& word : words->words) {
    if (IsBatchFlag(word)) {
      evidence->flag_line = number;
      evidence->flag = word.substr(0, word.find('='));
      return;
    }
  }
}

FormatGuess Decide(const Evidence& evidence) {
  if (evidence.entry_lines == 0) return {ManifestFormat::kFerry, "no entries"};
  if (evidence.tab) {
    return {ManifestFormat::kFerry, "tab-separated columns"};
  }
  if (evidence.flag_line != 0) {
    return {ManifestFormat::kGlobusBatch,
            fmt::format("line {} uses the batch flag {}", evidence.flag_line,
                        evidence.flag)};
  }
  if (evidence.quoting_line != 0) {
    return {ManifestFormat::kGlobusBatch,
            fmt::format("line {} quotes its paths like a shell",
                        evidence.quoting_line)};
  }
  if (evidence.all_pairs) {
    return {ManifestFormat::kGlobusBatch,
            "every line holds a source and a destination path"};
  }
  return {ManifestFormat::kFerry, "one path per line"};
}

}  // namespace

Status DetectManifestFormat(const std::string& path, FormatGuess* guess) {
  LineReader lines(kMaxManifestLine);
  if (int err = lines.Open(path); err != 0) {
    return ErrorFromErrno(err, "cannot open manifest " + path);
  }
  Evidence evidence;
  ShellWords words;
  uint64_t number = 0;
  std::string_view line;
  while (evidence.entry_lines < kLinesToJudge) {
    LineReader::Result result = lines.Next(&line);
    if (result == LineReader::Result::kEnd) break;
    if (result == LineReader::Result::kError) {
      return ErrorFromErrno(lines.error(), "cannot read " + path);
    }
    ++number;
    // An overlong line is left for the reader to report.
    if (result == LineReader::Result::kTooLong) continue;

    if (number == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") {
      line.remove_prefix(3);
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsEntryLine(line)) Observe(line, number, &words, &evidence);
  }
  *guess = Decide(evidence);
  return {};
}

}  // namespace ferry
