// Batch files of the Globus command line: shell-style splitting, batch
// lines, reading batch files, and telling them from ferry's own manifests.
// The splitting vectors were checked against Python's
// shlex.split(line, comments=True), which the Globus command line uses.
#include "manifest/batch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ferry/manifest.h"
#include "manifest/shell_split.h"

namespace ferry {
namespace {

using Words = std::vector<std::string>;

Words Split(std::string_view line) {
  ShellWords out;
  EXPECT_TRUE(SplitShellWords(line, &out)) << line << ": " << *out.error;
  return out.words;
}

std::string SplitError(std::string_view line) {
  ShellWords out;
  EXPECT_FALSE(SplitShellWords(line, &out)) << line;
  return out.error.value_or("");
}

struct SplitVector {
  const char* line;
  Words words;
};

TEST(ShellSplit, MatchesPythonShlexVectors) {
  const SplitVector vectors[] = {
      {"a b", {"a", "b"}},
      {"  a \t b  ", {"a", "b"}},
      {"a\rb", {"a", "b"}},
      {"a\x0b"
       "b",
       {"a\x0b"
        "b"}},  // only space, tab, CR and LF separate
      {R"('a b' c)", {"a b", "c"}},
      {R"("a b" c)", {"a b", "c"}},
      {R"(x'a b'y)", {"xa by"}},
      {R"('a'"b"c)", {"abc"}},
      {R"(a''b)", {"ab"}},
      {R"('a'\''b')", {"a'b"}},
      {R"(a\ b c)", {"a b", "c"}},
      {R"(a\ )", {"a "}},
      {R"(\'a)", {"'a"}},
      {R"(\"a)", {"\"a"}},
      {R"(\\a)", {"\\a"}},
      {R"(a\\)", {"a\\"}},
      {R"(-r 'x y' z)", {"-r", "x y", "z"}},
  };
  for (const SplitVector& v : vectors) {
    EXPECT_EQ(Split(v.line), v.words) << v.line;
  }
}

TEST(ShellSplit, SingleQuotesKeepEveryByte) {
  EXPECT_EQ(Split(R"('a\b')"), Words{"a\\b"});
  EXPECT_EQ(Split(R"('a\')"), Words{"a\\"});
  EXPECT_EQ(Split(R"('a#b' c)"), (Words{"a#b", "c"}));
}

TEST(ShellSplit, DoubleQuotesEscapeOnlyQuoteAndBackslash) {
  EXPECT_EQ(Split(R"("a\"b")"), Words{"a\"b"});
  EXPECT_EQ(Split(R"("a\\b")"), Words{"a\\b"});
  // Unlike a POSIX shell, shlex keeps the backslash before $ and `.
  EXPECT_EQ(Split(R"("a\$b")"), Words{"a\\$b"});
  EXPECT_EQ(Split(R"("a\`b")"), Words{"a\\`b"});
  EXPECT_EQ(Split(R"("a\xb")"), Words{"a\\xb"});
  EXPECT_EQ(Split(R"("a\'b")"), Words{"a\\'b"});
  EXPECT_EQ(Split(R"("a#b" c)"), (Words{"a#b", "c"}));
}

TEST(ShellSplit, HashStartsACommentEvenInsideAWord) {
  EXPECT_EQ(Split("a#b c"), Words{"a"});
  EXPECT_EQ(Split("a b#c d"), (Words{"a", "b"}));
  EXPECT_EQ(Split("a #b"), Words{"a"});
  EXPECT_EQ(Split(R"(a\#b)"), Words{"a#b"});
  EXPECT_EQ(Split("# all of it"), Words{});
  EXPECT_EQ(Split("#"), Words{});
}

TEST(ShellSplit, BlankLineHasNoWords) {
  EXPECT_EQ(Split(""), Words{});
  EXPECT_EQ(Split("   "), Words{});
}

TEST(ShellSplit, EmptyQuotedStringIsAWord) {
  EXPECT_EQ(Split("'' x"), (Words{"", "x"}));
  EXPECT_EQ(Split(R"("" "")"), (Words{"", ""}));
  EXPECT_EQ(Split("''#x y"), Words{""});
}

TEST(ShellSplit, UnclosedQuoteIsAnError) {
  EXPECT_NE(SplitError("'a").find("no closing quotation"), std::string::npos);
  EXPECT_NE(
      SplitError(R"(x "a)").find("no closing quotation: the \" at byte 3"),
      std::string::npos);
  // The escaped quote does not close the string.
  EXPECT_NE(SplitError(R"("a\")").find("no closing quotation"),
            std::string::npos);
}

TEST(ShellSplit, TrailingBackslashIsAnError) {
  EXPECT_NE(SplitError("a\\").find("no escaped character"), std::string::npos);
  EXPECT_NE(SplitError("\"a\\").find("no escaped character"),
            std::string::npos);
}

TEST(ShellSplit, ReportsQuotingAndGluedComments) {
  ShellWords out;
  ASSERT_TRUE(SplitShellWords("a b", &out));
  EXPECT_FALSE(out.used_quoting);
  EXPECT_FALSE(out.comment_in_word);
  ASSERT_TRUE(SplitShellWords("a\\ b c", &out));
  EXPECT_TRUE(out.used_quoting);
  ASSERT_TRUE(SplitShellWords("a b #note", &out));
  EXPECT_FALSE(out.comment_in_word);
  ASSERT_TRUE(SplitShellWords("a b#3", &out));
  EXPECT_TRUE(out.comment_in_word);
}

ParsedLine ParseBatch(std::string_view line, ManifestEntry* entry) {
  ShellWords scratch;
  return ParseBatchLine(line, entry, &scratch);
}

ManifestEntry MustParse(std::string_view line) {
  ManifestEntry e;
  ParsedLine p = ParseBatch(line, &e);
  EXPECT_TRUE(p.has_entry) << line << ": " << p.error.value_or("no entry");
  return e;
}

TEST(BatchLine, ReadsSourceThenDestination) {
  ManifestEntry e = MustParse("in/a.dat out/b.dat");
  EXPECT_EQ(e.path, "in/a.dat");
  EXPECT_EQ(e.dest, "out/b.dat");
  EXPECT_EQ(e.destination(), "out/b.dat");
  EXPECT_FALSE(e.recursive);
  EXPECT_FALSE(e.size);
  EXPECT_FALSE(e.xxh128);
}

TEST(BatchLine, SetsDestinationEvenWhenEqual) {
  EXPECT_EQ(MustParse("a a").dest, "a");
}

TEST(BatchLine, QuotedPathsKeepSpacesAndHashes) {
  ManifestEntry e = MustParse(R"('run 1/a#3.dat' "out dir/a#3.dat")");
  EXPECT_EQ(e.path, "run 1/a#3.dat");
  EXPECT_EQ(e.dest, "out dir/a#3.dat");
}

TEST(BatchLine, AcceptsFlagsAnywhere) {
  for (const char* line : {"--recursive src dst", "src -r dst", "src dst -r",
                           "-r src --external-checksum abc dst"}) {
    ManifestEntry e = MustParse(line);
    EXPECT_EQ(e.path, "src") << line;
    EXPECT_EQ(e.dest, "dst") << line;
    EXPECT_TRUE(e.recursive) << line;
  }
}

TEST(BatchLine, LaterFlagWins) {
  EXPECT_FALSE(MustParse("-r a b --no-recursive").recursive);
  EXPECT_TRUE(MustParse("--no-recursive a b --recursive").recursive);
}

TEST(BatchLine, AcceptsAndDropsExternalChecksum) {
  ManifestEntry e =
      MustParse("a b --external-checksum=d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(e.path, "a");
  EXPECT_FALSE(e.xxh128);
  // The next word is the value, whatever it looks like.
  EXPECT_FALSE(MustParse("a --external-checksum -r b").recursive);
}

TEST(BatchLine, DoubleDashEndsFlags) {
  ManifestEntry e = MustParse("-r -- -x --recursive");
  EXPECT_EQ(e.path, "-x");
  EXPECT_EQ(e.dest, "--recursive");
  EXPECT_TRUE(e.recursive);
}

TEST(BatchLine, KnowsNoAnsiCQuoting) {
  // $'...' is a bash extension, not POSIX: the '$' stays and \t is literal.
  EXPECT_EQ(MustParse(R"($'a\tb' c)").path, "$a\\tb");
}

TEST(BatchLine, LoneDashIsAPath) { EXPECT_EQ(MustParse("- b").path, "-"); }

TEST(BatchLine, KeepsOneLeadingSlashOfAbsolutePaths) {
  ManifestEntry e = MustParse("/data/in/a.dat out/a.dat");
  EXPECT_EQ(e.path, "/data/in/a.dat");
  EXPECT_EQ(e.dest, "out/a.dat");
  EXPECT_EQ(MustParse("a /abs/b").dest, "/abs/b");
}

TEST(BatchLine, DropsTheTrailingSlashOfFolders) {
  ManifestEntry e = MustParse("-r in/folder/ /out/folder/");
  EXPECT_EQ(e.path, "in/folder");
  EXPECT_EQ(e.dest, "/out/folder");
}

TEST(BatchLine, SkipsBlankAndCommentLines) {
  for (const char* line : {"", "   ", "\t", "# note", "  # note", "\r"}) {
    ManifestEntry e;
    ParsedLine p = ParseBatch(line, &e);
    EXPECT_FALSE(p.has_entry) << line;
    EXPECT_FALSE(p.error) << line;
  }
}

TEST(BatchLine, DropsCarriageReturn) {
  ManifestEntry e = MustParse("a 'b c'\r");
  EXPECT_EQ(e.dest, "b c");
}

struct BadLine {
  const char* line;
  const char* problem;  // a part of the message
};

TEST(BatchLine, NamesWhatIsWrongWithEachBadLine) {
  const BadLine bad[] = {
      {"only-one", "one path only"},
      {"-r", "no path"},
      {"a b c", "3 paths"},
      {"a#b c", "one path only"},  // the '#' starts a comment
      {"a b --bogus", "unknown flag '--bogus'"},
      {"a b -x", "unknown flag '-x'"},
      {"a b -r=1", "unknown flag '-r=1'"},
      {"a b --recursive=yes", "flag --recursive takes no value"},
      {"a b --external-checksum", "flag --external-checksum needs a value"},
      {"'a b", "no closing quotation"},
      {"a b\\", "no escaped character"},
      {"a/../b c", "source: '..' segment"},
      {"a ./c", "destination: '.' segment"},
      {"a b//c", "destination: empty path segment"},
      {"a//b c", "source: empty path segment"},
      {"//a b", "source: more than one leading '/'"},
      {"a/ b//", "destination: empty path segment"},
      {"'' b", "source: empty path"},
      {"/ b", "source: the root '/'"},
      {"'a\x01' b", "source: control byte 0x01"},
  };
  for (const BadLine& b : bad) {
    ManifestEntry e;
    ParsedLine p = ParseBatch(b.line, &e);
    EXPECT_FALSE(p.has_entry) << b.line;
    ASSERT_TRUE(p.error) << b.line;
    EXPECT_NE(p.error->find(b.problem), std::string::npos)
        << b.line << " gave: " << *p.error;
  }
}

TEST(BatchFlag, KnowsEachFlagInEachForm) {
  EXPECT_TRUE(IsBatchFlag("-r"));
  EXPECT_TRUE(IsBatchFlag("--recursive"));
  EXPECT_TRUE(IsBatchFlag("--no-recursive"));
  EXPECT_TRUE(IsBatchFlag("--external-checksum"));
  EXPECT_TRUE(IsBatchFlag("--external-checksum=abc"));
  EXPECT_FALSE(IsBatchFlag("-r=1"));
  EXPECT_FALSE(IsBatchFlag("--"));
  EXPECT_FALSE(IsBatchFlag("-"));
  EXPECT_FALSE(IsBatchFlag("--recursively"));
}

class BatchFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry-batch-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& text) {
    std::string path = (dir_ / "manifest").string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  FormatGuess Detect(const std::string& text) {
    FormatGuess guess;
    Status s = DetectManifestFormat(Write(text), &guess);
    EXPECT_TRUE(s.ok()) << s.error().message();
    return guess;
  }

  std::filesystem::path dir_;
};

TEST_F(BatchFile, ReadsEntriesWithLineNumbers) {
  std::string path = Write(
      "# transfers for run 7\r\n"
      "in/a 'out/a b'\r\n"
      "\r\n"
      "-r /in/dir/ out/dir  # whole folder\r\n");
  ManifestReader reader;
  ASSERT_TRUE(reader.Open(path, ManifestFormat::kGlobusBatch).ok());
  ManifestEntry e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "in/a");
  EXPECT_EQ(e.dest, "out/a b");
  EXPECT_EQ(e.line, 2u);
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "/in/dir");
  EXPECT_EQ(e.dest, "out/dir");
  EXPECT_TRUE(e.recursive);
  EXPECT_EQ(e.line, 4u);
  EXPECT_FALSE(reader.Next(&e));
  EXPECT_FALSE(reader.error());
}

TEST_F(BatchFile, SkipsAByteOrderMark) {
  ManifestReader reader;
  ASSERT_TRUE(reader
                  .Open(Write("\xEF\xBB\xBF"
                              "a b\n"),
                        ManifestFormat::kGlobusBatch)
                  .ok());
  ManifestEntry e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "a");
}

TEST_F(BatchFile, ErrorNamesFileAndLine) {
  std::string path = Write("a b\nc\n");
  ManifestReader reader;
  ASSERT_TRUE(reader.Open(path, ManifestFormat::kGlobusBatch).ok());
  ManifestEntry e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_FALSE(reader.Next(&e));
  ASSERT_TRUE(reader.error());
  EXPECT_EQ(reader.error()->code(), ErrorCode::kManifest);
  EXPECT_EQ(reader.error()->message(),
            path +
                ":2: one path only: a batch line needs a source and a "
                "destination");
}

TEST_F(BatchFile, CheckCountsRecursiveEntries) {
  ManifestCheck check;
  ASSERT_TRUE(CheckManifest(Write("a b\n\nc d\n-r e f\ng h --recursive\n"),
                            ManifestFormat::kGlobusBatch, &check)
                  .ok());
  EXPECT_EQ(check.entries, 4u);
  EXPECT_EQ(check.recursive, 2u);
  EXPECT_EQ(check.first_recursive_line, 4u);
}

TEST_F(BatchFile, CheckNamesEveryBadLine) {
  ManifestCheck check;
  Status s = CheckManifest(Write("a b\na b c\nok ok\n'x y\n"),
                           ManifestFormat::kGlobusBatch, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(check.bad_lines, 2u);
  EXPECT_EQ(check.entries, 2u);
  EXPECT_NE(s.error().message().find(":2: 3 paths"), std::string::npos)
      << s.error().message();
  EXPECT_NE(s.error().message().find(":4: no closing quotation"),
            std::string::npos)
      << s.error().message();
}

TEST_F(BatchFile, FerryFormatLeavesRecursiveAndDestinationUnset) {
  ManifestCheck check;
  ASSERT_TRUE(
      CheckManifest(Write("a b\n"), ManifestFormat::kFerry, &check).ok());
  EXPECT_EQ(check.recursive, 0u);
  EXPECT_EQ(check.first_recursive_line, 0u);
}

TEST_F(BatchFile, DetectsPlainFerryManifest) {
  FormatGuess g = Detect("# inputs\nraw/a.dat\nraw/b.dat\n");
  EXPECT_EQ(g.format, ManifestFormat::kFerry);
  EXPECT_EQ(g.reason, "one path per line");
}

TEST_F(BatchFile, DetectsFerryColumns) {
  FormatGuess g = Detect("a b\nc d\te\t12\n");
  EXPECT_EQ(g.format, ManifestFormat::kFerry);
  EXPECT_EQ(g.reason, "tab-separated columns");
}

TEST_F(BatchFile, DetectsBatchFileOfPairs) {
  FormatGuess g = Detect("# staged by hand\nin/a out/a\r\nin/b  out/b\n");
  EXPECT_EQ(g.format, ManifestFormat::kGlobusBatch);
  EXPECT_EQ(g.reason, "every line holds a source and a destination path");
}

TEST_F(BatchFile, DetectsBatchFlag) {
  // Line 3 is wrong either way; the flag on line 2 says it is a batch file.
  FormatGuess g = Detect("a b\nc d --external-checksum=0f\nlonely\n");
  EXPECT_EQ(g.format, ManifestFormat::kGlobusBatch);
  EXPECT_EQ(g.reason, "line 2 uses the batch flag --external-checksum");
}

TEST_F(BatchFile, DetectsShellQuoting) {
  FormatGuess g = Detect("a b\n'in/x y' out\nthree words here\n");
  EXPECT_EQ(g.format, ManifestFormat::kGlobusBatch);
  EXPECT_EQ(g.reason, "line 2 quotes its paths like a shell");
}

TEST_F(BatchFile, FerryPathsWithSpacesStayFerry) {
  FormatGuess g = Detect("raw/run 1/a.dat\nraw/b.dat\nraw/run 2/x y.dat\n");
  EXPECT_EQ(g.format, ManifestFormat::kFerry);
  EXPECT_EQ(g.reason, "one path per line");
}

TEST_F(BatchFile, FerryPathsWithGluedHashStayFerry) {
  // Each line splits into two words, but only because '#' cut the second.
  FormatGuess g = Detect("raw/run 1/sample#3.dat\nraw/run 1/sample#4.dat\n");
  EXPECT_EQ(g.format, ManifestFormat::kFerry);
}

TEST_F(BatchFile, FerryPathsWithOneSpaceEachReadAsBatch) {
  // The documented ambiguity: nothing tells these from pairs of paths, so
  // the guess is a batch file and --format must say otherwise.
  FormatGuess g = Detect("raw/run 1/a.dat\nraw/run 2/b.dat\n");
  EXPECT_EQ(g.format, ManifestFormat::kGlobusBatch);
}

TEST_F(BatchFile, FerryPathWithOddQuoteStaysFerry) {
  FormatGuess g = Detect("data/it's here.txt\ndata/b.txt\n");
  EXPECT_EQ(g.format, ManifestFormat::kFerry);
}

TEST_F(BatchFile, EmptyManifestIsFerry) {
  FormatGuess g = Detect("# nothing yet\n\n");
  EXPECT_EQ(g.format, ManifestFormat::kFerry);
  EXPECT_EQ(g.reason, "no entries");
}

TEST_F(BatchFile, DetectsFromTheFirstThousandEntries) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "in/" + std::to_string(i) + " out\n";
  text += "a/single/path\n";
  EXPECT_EQ(Detect(text).format, ManifestFormat::kGlobusBatch);
}

TEST_F(BatchFile, DetectingAMissingFileIsAnError) {
  FormatGuess guess;
  Status s = DetectManifestFormat((dir_ / "nope").string(), &guess);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot open manifest"),
            std::string::npos);
}

}  // namespace
}  // namespace ferry
