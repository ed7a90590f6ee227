// `ferry manifest` and `ferry verify` as a user runs them: output, exit
// codes, and what is left on disk.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ferry/digest.h"
#include "integration/harness.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using testing::RandomBytes;
using testing::ReadFile;
using testing::RunFerry;
using testing::RunResult;
using testing::WriteFile;
using testing::XxhsumOf;

class TreeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    base_ = fs::temp_directory_path() /
            (std::string("ferry-cli-test-") + info->name() + "-" +
             std::to_string(::getpid()));
    fs::remove_all(base_);
    tree_ = base_ / "tree";
    fs::create_directories(tree_);
  }
  void TearDown() override { fs::remove_all(base_); }

  // A few files of assorted sizes.
  void MakeTree() {
    WriteFile(tree_ / "b.dat", RandomBytes(3 * 1024 * 1024 + 5, 1));
    WriteFile(tree_ / "a/one", "one\n");
    WriteFile(tree_ / "a/empty", "");
    WriteFile(tree_ / "c d/e#f", RandomBytes(70000, 2));
  }

  // The manifest line xxhsum's digest calls for.
  std::string LineOf(const std::string& rel) const {
    return rel + "\t" + std::to_string(fs::file_size(tree_ / rel)) + "\t" +
           XxhsumOf(tree_ / rel);
  }

  fs::path WriteManifest(const std::vector<std::string>& lines) const {
    fs::path path = base_ / "check.tsv";
    std::ofstream out(path, std::ios::trunc);
    for (const auto& line : lines) out << line << '\n';
    return path;
  }

  fs::path base_;
  fs::path tree_;
};

TEST_F(TreeCliTest, ManifestToStdoutMatchesXxhsum) {
  MakeTree();
  RunResult r = RunFerry({"manifest", tree_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, LineOf("a/empty") + "\n" + LineOf("a/one") + "\n" +
                       LineOf("b.dat") + "\n" + LineOf("c d/e#f") + "\n");
  EXPECT_NE(r.err.find("manifest: 4 files"), std::string::npos) << r.err;
}

TEST_F(TreeCliTest, ManifestFileInsideTheTreeIsWholeAndNotListed) {
  MakeTree();
  fs::path out = tree_ / "MANIFEST.tsv";
  WriteFile(out, "an older manifest\n");
  RunResult r =
      RunFerry({"manifest", tree_.string(), "-o", out.string(), "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  std::string manifest = ReadFile(out);
  EXPECT_EQ(manifest.find("MANIFEST"), std::string::npos) << manifest;
  EXPECT_EQ(std::count(manifest.begin(), manifest.end(), '\n'), 4);
  // Nothing but the manifest was added: no temporary file is left.
  std::vector<std::string> top;
  for (auto& e : fs::directory_iterator(tree_)) {
    top.push_back(e.path().filename().string());
  }
  std::sort(top.begin(), top.end());
  EXPECT_EQ(top,
            (std::vector<std::string>{"MANIFEST.tsv", "a", "b.dat", "c d"}));
}

TEST_F(TreeCliTest, ManifestSkipsSpecialFilesAndOddNamesWithWarnings) {
  WriteFile(tree_ / "ok", "ok");
  WriteFile(tree_ / "tab\tname", "x");
  ASSERT_EQ(::mkfifo((tree_ / "pipe").c_str(), 0644), 0);
  fs::create_symlink("ok", tree_ / "link");
  RunResult r = RunFerry({"manifest", tree_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, LineOf("ok") + "\n");
  EXPECT_NE(r.err.find("pipe: fifo, skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"tab\\tname\""), std::string::npos) << r.err;

  r = RunFerry({"manifest", tree_.string(), "--follow-symlinks"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "link\t2\t" + XxhsumOf(tree_ / "ok") + "\n" + LineOf("ok") + "\n");
}

TEST_F(TreeCliTest, ManifestOfSomethingElseThanAFolderIsBadUsage) {
  WriteFile(base_ / "file", "x");
  RunResult r = RunFerry(
      {"manifest", (base_ / "file").string(), "-o", (base_ / "out").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is not a folder"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(base_ / "out"));
  EXPECT_EQ(RunFerry({"manifest"}).exit_code, 2);
  EXPECT_EQ(RunFerry({"manifest", tree_.string(), "--threads", "0"}).exit_code,
            2);
}

TEST_F(TreeCliTest, VerifyOfItsOwnManifestExitsZero) {
  MakeTree();
  fs::path manifest = base_ / "m.tsv";
  ASSERT_EQ(
      RunFerry({"manifest", tree_.string(), "-o", manifest.string()}).exit_code,
      0);
  RunResult r = RunFerry({"verify", manifest.string(), "--in", tree_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("verify: 4 files checked, 0 differ"), std::string::npos)
      << r.err;

  r = RunFerry({"verify", manifest.string(), "--in", tree_.string(), "-q"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
}

TEST_F(TreeCliTest, VerifyListsDifferencesAndExitsOne) {
  MakeTree();
  fs::path manifest = base_ / "m.tsv";
  ASSERT_EQ(
      RunFerry({"manifest", tree_.string(), "-o", manifest.string()}).exit_code,
      0);
  std::string old_b = XxhsumOf(tree_ / "b.dat");
  fs::remove(tree_ / "a/one");
  WriteFile(tree_ / "a/empty", "now four bytes");
  std::string b = ReadFile(tree_ / "b.dat");
  b[b.size() / 2] ^= 1;
  WriteFile(tree_ / "b.dat", b);

  RunResult r = RunFerry({"verify", manifest.string(), "--in", tree_.string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out,
            "size\ta/empty\t0\t14\n"
            "missing\ta/one\n"
            "checksum\tb.dat\t" +
                old_b + "\t" + XxhsumOf(tree_ / "b.dat") + "\n");
  EXPECT_NE(r.err.find("verify: 4 files checked, 3 differ"), std::string::npos)
      << r.err;
}

TEST_F(TreeCliTest, VerifyWithPathsOnlyChecksThatFilesExist) {
  WriteFile(tree_ / "here", "x");
  fs::path manifest = WriteManifest({"# paths only", "here", "", "absent"});
  RunResult r = RunFerry({"verify", manifest.string(), "--in", tree_.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "missing\tabsent\n");
}

TEST_F(TreeCliTest, VerifyRefusesABadManifestWithExitTwo) {
  WriteFile(tree_ / "a", "a");
  fs::path manifest = WriteManifest({"a", "/etc/passwd", "b\tbig"});
  RunResult r = RunFerry({"verify", manifest.string(), "--in", tree_.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("check.tsv:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check.tsv:3:"), std::string::npos) << r.err;

  r = RunFerry(
      {"verify", (base_ / "none.tsv").string(), "--in", tree_.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(RunFerry({"verify", manifest.string()}).exit_code, 2);
}

}  // namespace
}  // namespace ferry
