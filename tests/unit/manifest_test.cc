#include "ferry/manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "manifest/line_reader.h"

namespace ferry {
namespace {

ParsedLine Parse(std::string_view line, ManifestEntry* entry) {
  return ParseManifestLine(line, entry);
}

TEST(ManifestLine, PathOnly) {
  ManifestEntry e;
  ParsedLine p = Parse("data/run 1/a#b?c%d é.txt", &e);
  ASSERT_TRUE(p.has_entry);
  EXPECT_EQ(e.path, "data/run 1/a#b?c%d é.txt");
  EXPECT_FALSE(e.size);
  EXPECT_FALSE(e.xxh128);
}

TEST(ManifestLine, PathSizeAndDigest) {
  ManifestEntry e;
  ParsedLine p = Parse("a/b\t12\t99aa06d3014798d86001c324468d497f", &e);
  ASSERT_TRUE(p.has_entry) << p.error.value_or("");
  EXPECT_EQ(e.path, "a/b");
  EXPECT_EQ(e.size, 12u);
  ASSERT_TRUE(e.xxh128);
  EXPECT_EQ(e.xxh128->ToHex(), "99aa06d3014798d86001c324468d497f");
}

TEST(ManifestLine, EmptySizeColumnMeansUnknown) {
  ManifestEntry e;
  ParsedLine p = Parse("a\t\t99aa06d3014798d86001c324468d497f", &e);
  ASSERT_TRUE(p.has_entry);
  EXPECT_FALSE(e.size);
  EXPECT_TRUE(e.xxh128);
}

TEST(ManifestLine, DropsCarriageReturn) {
  ManifestEntry e;
  ASSERT_TRUE(Parse("a/b\t3\r", &e).has_entry);
  EXPECT_EQ(e.path, "a/b");
  EXPECT_EQ(e.size, 3u);
}

TEST(ManifestLine, ClearsWhatOnlyBatchFilesSet) {
  ManifestEntry e;
  e.dest = "elsewhere";
  e.recursive = true;
  ASSERT_TRUE(Parse("a/b", &e).has_entry);
  EXPECT_TRUE(e.dest.empty());
  EXPECT_EQ(e.destination(), "a/b");
  EXPECT_FALSE(e.recursive);
}

TEST(ManifestLine, SkipsBlankAndCommentLines) {
  ManifestEntry e;
  for (const char* line : {"", "   ", "\t", "# a comment", "#", "\r"}) {
    ParsedLine p = Parse(line, &e);
    EXPECT_FALSE(p.has_entry) << line;
    EXPECT_FALSE(p.error) << line;
  }
}

TEST(ManifestLine, RefusesEachKindOfBadLine) {
  const char* bad[] = {
      "/etc/passwd",              // absolute
      "a/../b",                   // parent segment
      "..",                       // parent segment alone
      "a/./b",                    // current-directory segment
      "a//b",                     // empty segment
      "a/b/",                     // trailing slash
      "a\x01z",                   // control byte
      "a\x7fz",                   // DEL
      "a\tnot-a-size",            // size not a number
      "a\t-1",                    // negative size
      "a\t12\tnot-hex",           // digest not hex
      "a\t12\t99aa06d3014798d8",  // digest too short
      "a\t1\t99aa06d3014798d86001c324468d497f\textra",  // four columns
  };
  for (const char* line : bad) {
    ManifestEntry e;
    ParsedLine p = Parse(line, &e);
    EXPECT_FALSE(p.has_entry) << line;
    EXPECT_TRUE(p.error) << line;
  }
}

TEST(ManifestLine, RefusesNulAndEscapeBytes) {
  ManifestEntry e;
  ParsedLine p = Parse(std::string_view("a\0b", 3), &e);
  ASSERT_TRUE(p.error);
  EXPECT_NE(p.error->find("control byte 0x00"), std::string::npos) << *p.error;
  p = Parse("a\x1b[2J", &e);
  ASSERT_TRUE(p.error);
  EXPECT_NE(p.error->find("control byte 0x1b"), std::string::npos) << *p.error;
  // A column's bytes are escaped in the message, not sent to a terminal.
  p = Parse("a\t\x1b[2J", &e);
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->find('\x1b'), std::string::npos) << *p.error;
}

TEST(ManifestLine, DropsCarriageReturnOfEveryKindOfLine) {
  ManifestEntry e;
  ASSERT_TRUE(Parse("a\r", &e).has_entry);
  EXPECT_EQ(e.path, "a");
  ASSERT_TRUE(Parse("a\t\t99aa06d3014798d86001c324468d497f\r", &e).has_entry);
  EXPECT_TRUE(e.xxh128);
  EXPECT_FALSE(Parse("# comment\r", &e).has_entry);
  // Only one: a second is a control byte of the path.
  EXPECT_TRUE(Parse("a\r\r", &e).error);
}

TEST(ManifestLine, RefusesInvalidUtf8NamingTheOffset) {
  struct Case {
    std::string line;
    size_t offset;
  };
  const Case cases[] = {
      {"caf\xe9", 3},            // Latin-1
      {"ok/\xc0\xaf", 3},        // overlong '/'
      {"\xed\xa0\x80x", 0},      // surrogate
      {"x\xf4\x90\x80\x80", 1},  // above U+10FFFF
      {"ab\xe2\x82", 2},         // cut short at the end
      {"a\x80", 1},              // lone continuation byte
      {"a\t12\t\xff", 5},        // in a column, not the path
  };
  for (const Case& c : cases) {
    ManifestEntry e;
    ParsedLine p = Parse(c.line, &e);
    ASSERT_TRUE(p.error) << c.line;
    EXPECT_NE(p.error->find("invalid UTF-8 at byte offset " +
                            std::to_string(c.offset) + " "),
              std::string::npos)
        << *p.error;
  }
}

TEST(ManifestLine, AcceptsUtf8AndCommentsInAnyEncoding) {
  ManifestEntry e;
  EXPECT_TRUE(
      Parse("na\xc3\xafve/\xe6\x97\xa5/\xf0\x9f\x93\x81", &e).has_entry);
  EXPECT_TRUE(Parse("\xef\xbf\xbd\xed\x9f\xbf\xf4\x8f\xbf\xbf", &e).has_entry);
  ParsedLine p = Parse("# caf\xe9", &e);
  EXPECT_FALSE(p.has_entry);
  EXPECT_FALSE(p.error);
}

TEST(Utf8, FindsTheFirstBadByte) {
  EXPECT_EQ(FindInvalidUtf8(""), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("\xc2\x80\xdf\xbf"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("\xc1\xbf"), 0u);            // overlong
  EXPECT_EQ(FindInvalidUtf8("\xe0\x9f\xbf"), 0u);        // overlong
  EXPECT_EQ(FindInvalidUtf8("\xf0\x8f\xbf\xbf"), 0u);    // overlong
  EXPECT_EQ(FindInvalidUtf8("ab\xf5\x80\x80\x80"), 2u);  // no such lead
  EXPECT_EQ(FindInvalidUtf8("\xe2\x28\xa1"), 0u);        // bad continuation
}

TEST(PathValidation, AcceptsOrdinaryNames) {
  EXPECT_FALSE(ValidateRelativePath("a"));
  EXPECT_FALSE(ValidateRelativePath("a/b/c.txt"));
  EXPECT_FALSE(ValidateRelativePath(".hidden/..dots/x..y"));
  EXPECT_FALSE(ValidateRelativePath("naïve/日本語"));
}

TEST(PathValidation, RefusesLongSegments) {
  EXPECT_FALSE(ValidateRelativePath(std::string(255, 'x')));
  EXPECT_TRUE(ValidateRelativePath(std::string(256, 'x')));
}

class ManifestFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry-manifest-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& text) {
    std::string path = (dir_ / "manifest").string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ManifestFile, ReadsEntriesWithLineNumbers) {
  std::string path = Write("# header\na\n\nb/c\t5\nlast-without-newline");
  ManifestReader reader;
  ASSERT_TRUE(reader.Open(path).ok());
  ManifestEntry e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "a");
  EXPECT_EQ(e.line, 2u);
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "b/c");
  EXPECT_EQ(e.line, 4u);
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "last-without-newline");
  EXPECT_EQ(e.line, 5u);
  EXPECT_FALSE(reader.Next(&e));
  EXPECT_FALSE(reader.error());
}

TEST_F(ManifestFile, SkipsAByteOrderMark) {
  ManifestReader reader;
  ASSERT_TRUE(reader
                  .Open(Write("\xEF\xBB\xBF"
                              "first\nsecond\n"))
                  .ok());
  ManifestEntry e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e.path, "first");
}

TEST_F(ManifestFile, CheckNamesEveryBadLine) {
  std::string path = Write("ok\n/abs\nfine\na/../b\n");
  ManifestCheck check;
  Status s = CheckManifest(path, ManifestFormat::kFerry, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kManifest);
  EXPECT_EQ(check.bad_lines, 2u);
  EXPECT_NE(s.error().message().find(":2: absolute"), std::string::npos)
      << s.error().message();
  EXPECT_NE(s.error().message().find(":4: '..' segment"), std::string::npos)
      << s.error().message();
}

TEST_F(ManifestFile, CheckCountsEntries) {
  ManifestCheck check;
  ASSERT_TRUE(
      CheckManifest(Write("a\nb\n# c\n\nd\n"), ManifestFormat::kFerry, &check)
          .ok());
  EXPECT_EQ(check.entries, 3u);
}

TEST_F(ManifestFile, RefusesOverlongLineAndGoesOn) {
  std::string text = "a\n" + std::string(kMaxManifestLine + 10, 'x') + "\nb\n";
  ManifestCheck check;
  Status s = CheckManifest(Write(text), ManifestFormat::kFerry, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(check.bad_lines, 1u);
  EXPECT_EQ(check.entries, 2u);
  EXPECT_NE(s.error().message().find(":2: line longer"), std::string::npos)
      << s.error().message();
}

TEST_F(ManifestFile, CheckNamesInvalidUtf8AndControlBytesByLine) {
  std::string text = "ok\nbad\xff\n";
  text += std::string("nul\0here\n", 9);
  text += "\r\nfine\r\n";
  ManifestCheck check;
  Status s = CheckManifest(Write(text), ManifestFormat::kFerry, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(check.bad_lines, 2u);
  EXPECT_EQ(check.entries, 2u);
  EXPECT_NE(s.error().message().find(":2: invalid UTF-8 at byte offset 3"),
            std::string::npos)
      << s.error().message();
  EXPECT_NE(s.error().message().find(":3: control byte 0x00"),
            std::string::npos)
      << s.error().message();
}

TEST_F(ManifestFile, BatchLinesMustBeUtf8TooButComments) {
  ManifestCheck check;
  Status s = CheckManifest(Write("# caf\xe9\nsrc dst\nsrc d\xe9st\n"),
                           ManifestFormat::kGlobusBatch, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(check.bad_lines, 1u);
  EXPECT_NE(s.error().message().find(":3: invalid UTF-8 at byte offset 5"),
            std::string::npos)
      << s.error().message();
}

TEST_F(ManifestFile, OnlyCommentsAndBlankLinesCountNoEntries) {
  ManifestCheck check;
  ASSERT_TRUE(
      CheckManifest(Write("# a\n\n   \n\r\n"), ManifestFormat::kFerry, &check)
          .ok());
  EXPECT_EQ(check.entries, 0u);
  ASSERT_TRUE(CheckManifest(Write(""), ManifestFormat::kFerry, &check).ok());
  EXPECT_EQ(check.entries, 0u);
}

TEST_F(ManifestFile, ManyOverlongLinesAreEachNamed) {
  std::string text;
  for (int i = 0; i < 3; ++i) {
    text += "f" + std::to_string(i) + "\n";
    text += std::string(kMaxManifestLine + 1, 'z') + "\n";
  }
  text += "#" + std::string(kMaxManifestLine - 1, 'k') + "\n";  // at the limit
  ManifestCheck check;
  Status s = CheckManifest(Write(text), ManifestFormat::kFerry, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(check.bad_lines, 3u);
  for (const char* line :
       {":2: line longer", ":4: line longer", ":6: line longer"}) {
    EXPECT_NE(s.error().message().find(line), std::string::npos)
        << s.error().message();
  }
}

TEST_F(ManifestFile, MissingFileIsAnError) {
  ManifestCheck check;
  Status s =
      CheckManifest((dir_ / "nope").string(), ManifestFormat::kFerry, &check);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot open manifest"),
            std::string::npos);
}

TEST_F(ManifestFile, OpenWantsAChosenFormat) {
  ManifestReader reader;
  EXPECT_FALSE(reader.Open(Write("a\n"), ManifestFormat::kAuto).ok());
}

TEST_F(ManifestFile, LineReaderKeepsMemoryBounded) {
  // A line of 10 MiB without a newline must not be buffered whole.
  std::string path = Write(std::string(10 << 20, 'y'));
  LineReader reader(1024);
  ASSERT_EQ(reader.Open(path), 0);
  std::string_view line;
  EXPECT_EQ(reader.Next(&line), LineReader::Result::kTooLong);
  EXPECT_EQ(reader.Next(&line), LineReader::Result::kEnd);
}

}  // namespace
}  // namespace ferry
