// The tree manifest and verification engine on real files: the walk's
// order and what it skips, digests against the xxhsum program, reading
// with io_uring and with pread, verification's differences.
#include "ferry/tree.h"

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ferry/digest.h"
#include "verify/file_hasher.h"
#include "verify/tree_hash.h"
#include "verify/tree_walker.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

std::string Bytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string data(size, '\0');
  for (char& c : data) c = static_cast<char>(random());
  return data;
}

void Write(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The digests `xxhsum -H2` prints for every regular file below `dir`,
// by relative path.
std::map<std::string, std::string> XxhsumTree(const fs::path& dir) {
  std::string command = "cd '" + dir.string() +
                        "' && find . -type f -printf '%P\\0' | "
                        "xargs -0 -r xxhsum -H2";
  std::map<std::string, std::string> digests;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return digests;
  std::string out;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, p)) > 0;) {
    out.append(buffer, n);
  }
  pclose(p);
  for (const std::string& line : Lines(out)) {
    digests[line.substr(34)] = line.substr(0, 32);
  }
  return digests;
}

// A log that tests can read.
struct CapturedLog {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> logger;

  CapturedLog() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
    logger = std::make_shared<spdlog::logger>("tree-test", sink);
    logger->set_level(spdlog::level::info);
    logger->set_pattern("%l: %v");
  }
};

// While it lives, the process acts as an unprivileged user when it runs
// as root, so that file permissions bind it as they bind users.
class UnprivilegedScope {
 public:
  UnprivilegedScope() : was_root_(::geteuid() == 0) {
    if (was_root_) {
      EXPECT_EQ(::seteuid(65534), 0);
    }
  }
  ~UnprivilegedScope() {
    if (was_root_) {
      EXPECT_EQ(::seteuid(0), 0);
    }
  }
  UnprivilegedScope(const UnprivilegedScope&) = delete;
  UnprivilegedScope& operator=(const UnprivilegedScope&) = delete;

 private:
  bool was_root_;
};

class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    base_ = fs::temp_directory_path() /
            (std::string("ferry-tree-test-") + info->name() + "-" +
             std::to_string(::getpid()));
    fs::remove_all(base_);
    tree_ = base_ / "tree";
    fs::create_directories(tree_);
    // Unprivileged scopes must be able to enter and write here.
    fs::permissions(base_, fs::perms::all);
    fs::permissions(tree_, fs::perms::all);
  }
  void TearDown() override {
    std::error_code ec;
    for (auto& e : fs::recursive_directory_iterator(base_, ec)) {
      fs::permissions(e.path(), fs::perms::owner_all, ec);
    }
    fs::remove_all(base_, ec);
  }

  // Runs WriteTreeManifest into a file below the test's folder and
  // returns its lines.
  std::vector<std::string> Manifest(TreeManifestOptions options = {},
                                    Status* status = nullptr) {
    options.dir = tree_.string();
    if (options.output.empty()) options.output = (base_ / "manifest").string();
    options.logger = log_.logger;
    Status s = WriteTreeManifest(options, &summary_);
    if (status != nullptr) *status = s;
    EXPECT_TRUE(status != nullptr || s.ok()) << s.error().message();
    return Lines(Read(options.output));
  }

  // The manifest lines xxhsum's digests call for, in byte order.
  std::vector<std::string> ExpectedLines() {
    std::vector<std::string> lines;
    for (auto& [path, digest] : XxhsumTree(tree_)) {
      lines.push_back(path + "\t" +
                      std::to_string(fs::file_size(tree_ / path)) + "\t" +
                      digest);
    }
    return lines;  // std::map sorts std::string keys by their bytes
  }

  std::vector<std::string> Paths(const std::vector<std::string>& lines) {
    std::vector<std::string> paths;
    for (const auto& line : lines)
      paths.push_back(line.substr(0, line.find('\t')));
    return paths;
  }

  fs::path base_;
  fs::path tree_;
  CapturedLog log_;
  TreeManifestSummary summary_;
};

TEST_F(TreeTest, ListsFilesSortedByPathBytes) {
  for (const char* name : {"b", "B", "a.txt", "a/b", "a/a/z", "a-", "\xc3\xa9",
                           "z/.hidden", "a b/c"}) {
    Write(tree_ / name, name);
  }
  std::vector<std::string> paths = Paths(Manifest());
  EXPECT_EQ(paths,
            (std::vector<std::string>{"B", "a b/c", "a-", "a.txt", "a/a/z",
                                      "a/b", "b", "z/.hidden", "\xc3\xa9"}));
  EXPECT_EQ(summary_.files, 9u);
}

TEST_F(TreeTest, SizesAndDigestsEqualXxhsum) {
  const size_t chunk = FileHasher::kChunk;
  std::vector<size_t> sizes = {
      0, 1, 4095, 4096, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk + 17};
  for (size_t i = 0; i < sizes.size(); ++i) {
    Write(tree_ / ("f" + std::to_string(i)), Bytes(sizes[i], i));
  }
  EXPECT_EQ(Manifest(), ExpectedLines());
}

TEST_F(TreeTest, EmptyFileHasTheEmptyDigest) {
  Write(tree_ / "empty", "");
  std::vector<std::string> lines = Manifest();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "empty\t0\t" + HashBuffer("", 0).ToHex());
  EXPECT_EQ(lines[0], "empty\t0\t99aa06d3014798d86001c324468d497f");
}

TEST_F(TreeTest, BigFileCrossingManyChunks) {
  std::string data = Bytes(40 * 1024 * 1024 + 12345, 7);
  Write(tree_ / "big", data);
  std::vector<std::string> lines = Manifest();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "big\t" + std::to_string(data.size()) + "\t" +
                          HashBuffer(data.data(), data.size()).ToHex());
  EXPECT_EQ(lines, ExpectedLines());
  EXPECT_EQ(summary_.bytes, data.size());
}

TEST_F(TreeTest, ManySmallFilesOnFewThreadsAndMany) {
  for (int i = 0; i < 3000; ++i) {
    Write(tree_ / ("d" + std::to_string(i % 37)) / ("f" + std::to_string(i)),
          Bytes(static_cast<size_t>(i % 5000), static_cast<uint64_t>(i)));
  }
  std::vector<std::string> expected = ExpectedLines();
  ASSERT_EQ(expected.size(), 3000u);
  for (int threads : {1, 2, 7}) {
    TreeManifestOptions options;
    options.threads = threads;
    EXPECT_EQ(Manifest(options), expected) << threads << " threads";
  }
}

TEST_F(TreeTest, PreadReadsTheSameAsIoUring) {
  std::string data = Bytes(5 * FileHasher::kChunk + 3, 11);
  Write(tree_ / "f", data);
  FileHasher uring;
  FileHasher pread(false);
  EXPECT_FALSE(pread.uses_io_uring());
  if (!uring.uses_io_uring()) {
    GTEST_SKIP() << "io_uring is not available here: "
                 << uring.fallback_reason();
  }
  HashedFile a;
  HashedFile b;
  uring.Hash((tree_ / "f").c_str(), false, true, std::nullopt, &a);
  pread.Hash((tree_ / "f").c_str(), false, true, std::nullopt, &b);
  ASSERT_TRUE(a.hashed && b.hashed);
  EXPECT_EQ(a.digest, HashBuffer(data.data(), data.size()));
  EXPECT_EQ(b.digest, a.digest);
  EXPECT_EQ(a.size, data.size());
  EXPECT_EQ(b.size, data.size());
}

TEST_F(TreeTest, APrefixHashedFromDiskContinuesToTheWholeDigest) {
  std::string data = Bytes(3 * FileHasher::kChunk + 17, 12);
  Write(tree_ / "f", data);
  const uint64_t kept = 2 * FileHasher::kChunk + 5;
  for (bool try_ring : {true, false}) {
    FileHasher hasher(try_ring);
    Hasher state;
    ASSERT_TRUE(hasher.HashPrefix((tree_ / "f").c_str(), kept, &state));
    state.Update(data.data() + kept, data.size() - kept);
    EXPECT_EQ(state.Final(), HashBuffer(data.data(), data.size()));
    // More than the file holds is refused.
    EXPECT_FALSE(
        hasher.HashPrefix((tree_ / "f").c_str(), data.size() + 1, &state));
  }
}

TEST_F(TreeTest, TreeHasherWithoutIoUringMatchesXxhsum) {
  for (int i = 0; i < 50; ++i) {
    Write(tree_ / ("f" + std::to_string(i)),
          Bytes(static_cast<size_t>(i) * 65537, static_cast<uint64_t>(i)));
  }
  std::map<std::string, std::string> expected = XxhsumTree(tree_);
  std::map<std::string, std::string> got;
  int next = 0;
  TreeHasher(2, *log_.logger, false)
      .Run(
          [&](HashTask& task) {
            if (next == 50) return false;
            task.rel = "f" + std::to_string(next++);
            task.path = (tree_ / task.rel).string();
            return true;
          },
          [&](HashTask& task) { got[task.rel] = task.result.digest.ToHex(); });
  EXPECT_EQ(got, expected);
}

TEST_F(TreeTest, SymlinksSkippedUnlessFollowed) {
  Write(tree_ / "file", "data");
  Write(tree_ / "dir/inner", "inner");
  fs::create_symlink("file", tree_ / "link-to-file");
  fs::create_directory_symlink("dir", tree_ / "link-to-dir");
  fs::create_symlink("nowhere", tree_ / "dangling");

  EXPECT_EQ(Paths(Manifest()), (std::vector<std::string>{"dir/inner", "file"}));
  EXPECT_EQ(summary_.skipped, 3u);
  EXPECT_NE(log_.text.str().find("link-to-file: symbolic link, skipped"),
            std::string::npos)
      << log_.text.str();

  TreeManifestOptions follow;
  follow.follow_symlinks = true;
  std::vector<std::string> lines = Manifest(follow);
  EXPECT_EQ(Paths(lines),
            (std::vector<std::string>{"dir/inner", "file", "link-to-dir/inner",
                                      "link-to-file"}));
  EXPECT_EQ(lines[1].substr(lines[1].find('\t')),
            lines[3].substr(lines[3].find('\t')));
  EXPECT_NE(log_.text.str().find("dangling: link to nothing"),
            std::string::npos);
}

TEST_F(TreeTest, LinkLoopIsSkippedWhenFollowing) {
  Write(tree_ / "a/file", "x");
  fs::create_directory_symlink("..", tree_ / "a/up");
  TreeManifestOptions follow;
  follow.follow_symlinks = true;
  EXPECT_EQ(Paths(Manifest(follow)), std::vector<std::string>{"a/file"});
  EXPECT_NE(log_.text.str().find("a/up/: link back to a folder above it"),
            std::string::npos)
      << log_.text.str();
}

TEST_F(TreeTest, FifoIsSkippedWithAWarning) {
  Write(tree_ / "file", "data");
  ASSERT_EQ(::mkfifo((tree_ / "pipe").c_str(), 0644), 0);
  EXPECT_EQ(Paths(Manifest()), std::vector<std::string>{"file"});
  EXPECT_NE(log_.text.str().find("warning: pipe: fifo, skipped"),
            std::string::npos)
      << log_.text.str();
}

TEST_F(TreeTest, FifoNamedInAManifestIsNotAFile) {
  ASSERT_EQ(::mkfifo((tree_ / "pipe").c_str(), 0644), 0);
  FileHasher hasher;
  HashedFile r;
  // Must return at once: nobody writes to the fifo.
  hasher.Hash((tree_ / "pipe").c_str(), true, true, std::nullopt, &r);
  EXPECT_EQ(r.err, 0);
  EXPECT_FALSE(r.regular);
  EXPECT_FALSE(r.hashed);
}

TEST_F(TreeTest, UnreadableFilesAndFoldersAreErrorsOthersListed) {
  Write(tree_ / "a", "a");
  Write(tree_ / "secret", "s");
  Write(tree_ / "closed/inside", "i");
  Write(tree_ / "z", "z");
  fs::permissions(tree_ / "secret", fs::perms::none);
  fs::permissions(tree_ / "closed", fs::perms::none);
  std::vector<std::string> paths;
  {
    UnprivilegedScope unprivileged;
    paths = Paths(Manifest());
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(summary_.errors, 2u);
  std::string log = log_.text.str();
  EXPECT_NE(log.find("error: secret: cannot open: Permission denied"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("error: closed/: cannot list folder"), std::string::npos)
      << log;
}

TEST_F(TreeTest, NamesAManifestCannotHoldAreSkipped) {
  Write(tree_ / "tab\there", "x");
  Write(tree_ / "new\nline", "x");
  Write(tree_ / "dir\tname/inside", "x");
  Write(tree_ / "#comment", "x");
  Write(tree_ / " ", "x");
  Write(tree_ / "sub/#fine", "x");
  Write(tree_ / "ok", "x");
  EXPECT_EQ(Paths(Manifest()), (std::vector<std::string>{"ok", "sub/#fine"}));
  EXPECT_EQ(summary_.skipped, 5u);
  EXPECT_NE(log_.text.str().find("\"tab\\there\": name a manifest cannot hold"),
            std::string::npos)
      << log_.text.str();
}

TEST_F(TreeTest, ManifestCannotHoldExplainsWhy) {
  EXPECT_FALSE(ManifestCannotHold("a/b c/#d"));
  EXPECT_TRUE(ManifestCannotHold("a\tb"));
  EXPECT_TRUE(ManifestCannotHold("a\rb"));
  EXPECT_TRUE(ManifestCannotHold("#a"));
  EXPECT_TRUE(ManifestCannotHold("  "));
  EXPECT_TRUE(
      ManifestCannotHold("\xEF\xBB\xBF"
                         "a"));
}

TEST_F(TreeTest, OutputInsideTheTreeIsNotListedAndReplacedWhole) {
  Write(tree_ / "a", "a");
  Write(tree_ / "list.tsv", "old manifest\n");
  TreeManifestOptions options;
  options.output = (tree_ / "list.tsv").string();
  EXPECT_EQ(Paths(Manifest(options)), std::vector<std::string>{"a"});
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(tree_)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "list.tsv"}));
}

TEST_F(TreeTest, InterruptedRunLeavesNoManifest) {
  Write(tree_ / "a", "a");
  std::atomic<bool> stop{true};
  TreeManifestOptions options;
  options.interrupt = &stop;
  options.output = (base_ / "out.tsv").string();
  Status status;
  Manifest(options, &status);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kInterrupted);
  EXPECT_FALSE(fs::exists(base_ / "out.tsv"));
  EXPECT_EQ(std::distance(fs::directory_iterator(base_), {}), 1);  // tree
}

TEST_F(TreeTest, NotAFolderIsBadUsage) {
  Write(base_ / "file", "x");
  TreeManifestOptions options;
  options.dir = (base_ / "file").string();
  options.output = (base_ / "out.tsv").string();
  Status status = WriteTreeManifest(options, &summary_);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kUsage);
  EXPECT_FALSE(fs::exists(base_ / "out.tsv"));
}

class VerifyTest : public TreeTest {
 protected:
  // Verifies the tree against a manifest of these lines.
  Status Verify(const std::vector<std::string>& lines, int threads = 0) {
    std::ofstream out(base_ / "check.tsv", std::ios::trunc);
    for (const auto& line : lines) out << line << '\n';
    out.close();
    VerifyOptions options;
    options.manifest = (base_ / "check.tsv").string();
    options.dir = tree_.string();
    options.threads = threads;
    options.logger = log_.logger;
    differences_.clear();
    options.on_difference = [this](const TreeDifference& d) {
      differences_.push_back(d.ToLine());
    };
    return VerifyManifest(options, &verify_);
  }

  std::vector<std::string> differences_;
  VerifySummary verify_;
};

TEST_F(VerifyTest, ItsOwnManifestMatches) {
  for (int i = 0; i < 200; ++i) {
    Write(tree_ / ("d" + std::to_string(i % 7)) / std::to_string(i),
          Bytes(static_cast<size_t>(i) * 1000, static_cast<uint64_t>(i)));
  }
  Write(tree_ / "big", Bytes(3 * FileHasher::kChunk + 5, 99));
  std::vector<std::string> lines = Manifest();
  ASSERT_TRUE(Verify(lines).ok());
  EXPECT_TRUE(differences_.empty());
  EXPECT_EQ(verify_.files, 201u);
  EXPECT_EQ(verify_.differences, 0u);
  EXPECT_GT(verify_.bytes, 3 * FileHasher::kChunk);
}

TEST_F(VerifyTest, ListsEachDifferenceInManifestOrder) {
  Write(tree_ / "same", "same");
  Write(tree_ / "shorter", "abc");
  Write(tree_ / "changed", "abcd");
  Write(tree_ / "only-size", "12345");
  Write(tree_ / "dir/x", "x");
  std::string abcd_digest = HashBuffer("abce", 4).ToHex();
  Status status = Verify({
      "same\t4\t" + HashBuffer("same", 4).ToHex(),
      "gone\t1\t" + HashBuffer("x", 1).ToHex(),
      "shorter\t4\t" + HashBuffer("abcd", 4).ToHex(),
      "changed\t4\t" + abcd_digest,
      "only-size\t5",
      "only-size\t6",
      "dir",
      "dir/x",
      "also-gone",
      "gone/below",
  });
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ(differences_, (std::vector<std::string>{
                              "missing\tgone",
                              "size\tshorter\t4\t3",
                              "checksum\tchanged\t" + abcd_digest + "\t" +
                                  HashBuffer("abcd", 4).ToHex(),
                              "size\tonly-size\t6\t5",
                              "notfile\tdir\tregular file\tfolder",
                              "missing\talso-gone",
                              "missing\tgone/below",
                          }));
  EXPECT_EQ(verify_.files, 10u);
  EXPECT_EQ(verify_.differences, 7u);
}

TEST_F(VerifyTest, UnreadableFileIsADifference) {
  Write(tree_ / "secret", "s");
  fs::permissions(tree_ / "secret", fs::perms::none);
  Status status = Status();
  {
    UnprivilegedScope unprivileged;
    status = Verify({"secret\t1\t" + HashBuffer("s", 1).ToHex()});
  }
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(differences_, std::vector<std::string>{
                              "unreadable\tsecret\tcannot open: Permission "
                              "denied"});
}

TEST_F(VerifyTest, BadManifestLinesAreNamedAndNothingIsRead) {
  Write(tree_ / "a", "a");
  Status status = Verify({"a", "../escape", "b\tnot-a-size", "c\t1\tshort"});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kManifest);
  const std::string& message = status.error().message();
  EXPECT_NE(message.find("3 bad line(s)"), std::string::npos) << message;
  EXPECT_NE(message.find("check.tsv:2:"), std::string::npos) << message;
  EXPECT_NE(message.find("check.tsv:4:"), std::string::npos) << message;
  EXPECT_EQ(verify_.files, 0u);
}

TEST_F(VerifyTest, MissingManifestOrFolderIsBadUsage) {
  VerifyOptions options;
  options.manifest = (base_ / "nope.tsv").string();
  options.dir = tree_.string();
  options.logger = log_.logger;
  Status status = VerifyManifest(options, &verify_);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kUsage);

  Write(base_ / "m.tsv", "a\n");
  options.manifest = (base_ / "m.tsv").string();
  options.dir = (base_ / "no-such-folder").string();
  status = VerifyManifest(options, &verify_);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kUsage);
}

}  // namespace
}  // namespace ferry
