// Hostile input to `ferry get`: manifests with bytes and lines no tool
// should trust, and destinations that are not what they seem. Each is
// refused with a message naming the line or file, and harms nothing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "ferry/digest.h"
#include "integration/harness.h"

namespace ferry::testing {
namespace {

using Json = nlohmann::json;

class Hostile : public CollectionTest {
 protected:
  RunResult GetWith(const std::string& manifest,
                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = GetArgs(manifest);
    args.push_back("--token-file");
    args.push_back(TestCollection().token_rw_file);
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args);
  }
  std::vector<Json> Report() { return ReadReport(work_ / "report.jsonl"); }

  // The manifest's bytes exactly as given, without a newline added.
  std::string RawManifest(const std::string& bytes) {
    fs::path path = work_ / "manifest";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path.string();
  }

  // Requests for this test's files, the OPTIONS probe left out.
  std::vector<Request> FileRequests() const {
    std::vector<Request> requests;
    for (Request& q : Requests()) {
      if (q.method != "OPTIONS") requests.push_back(std::move(q));
    }
    return requests;
  }

  // Every line the collection logged since the test began that names
  // this test's folder, the OPTIONS probe included.
  std::vector<std::string> AnyRequestLines() const {
    std::ifstream log(TestCollection().access_log);
    log.seekg(static_cast<std::streamoff>(log_offset_));
    std::vector<std::string> lines;
    for (std::string line; std::getline(log, line);) {
      if (line.find("/" + name_) != std::string::npos) lines.push_back(line);
    }
    return lines;
  }

  static bool Has(const RunResult& r, const std::string& text) {
    return r.err.find(text) != std::string::npos;
  }
};

TEST_F(Hostile, EscapingAbsoluteAndControlBytePathsRefuseTheRun) {
  Serve("ok", "ok");
  RunResult r = GetWith(Manifest({
      "ok",
      "a/../../escape",
      "/etc/passwd",
      "tab\x01here",
      std::string("nul\0byte", 8),
      "esc\x1b[2Jape",
      "..",
  }));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Has(r, ":2: '..' segment")) << r.err;
  EXPECT_TRUE(Has(r, ":3: absolute")) << r.err;
  EXPECT_TRUE(Has(r, ":4: control byte 0x01")) << r.err;
  EXPECT_TRUE(Has(r, ":5: control byte 0x00")) << r.err;
  EXPECT_TRUE(Has(r, ":6: control byte 0x1b")) << r.err;
  EXPECT_TRUE(Has(r, ":7: '..' segment")) << r.err;
  // The terminal never gets the escape sequence itself.
  EXPECT_FALSE(Has(r, "\x1b[2J")) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  EXPECT_TRUE(FileRequests().empty());
}

TEST_F(Hostile, BatchFilesKeepAbsolutePathsButNotParentSegments) {
  Serve("a.txt", "a");
  const fs::path absolute = work_ / "absolute-dest.txt";
  // A batch line may name the collection's root and the local root.
  std::string batch = Manifest({"/" + name_ + "/a.txt " + absolute.string()});
  RunResult r = GetWith(batch, {"--format", "globus-batch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(absolute), "a");

  batch = Manifest({"a.txt ../outside.txt", "../a.txt in.txt"});
  r = GetWith(batch, {"--format", "globus-batch"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Has(r, ":1: destination: '..' segment")) << r.err;
  EXPECT_TRUE(Has(r, ":2: source: '..' segment")) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  EXPECT_FALSE(fs::exists(dest_.parent_path() / "outside.txt"));
}

TEST_F(Hostile, CrlfLineEndingsAreStripped) {
  Serve("a", "first");
  Serve("b/c", "abc");
  const std::string digest = HashBuffer("abc", 3).ToHex();
  RunResult r = GetWith(RawManifest(
      "# written on Windows\r\n\r\na\r\nb/c\t3\t" + digest + "\r\n"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();  // "a", not "a\r"
  std::vector<Json> report = Report();
  ASSERT_EQ(report.size(), 2u);
  // Lines come in the order the files ended, which two streams may swap.
  const Json& bc = report[0]["path"] == "b/c" ? report[0] : report[1];
  EXPECT_EQ(bc["path"], "b/c");
  EXPECT_EQ(bc["xxh128"], digest);
}

TEST_F(Hostile, InvalidUtf8IsRefusedNamingLineAndOffset) {
  Serve("naïve", "fine");
  RunResult r = GetWith(Manifest({
      "naïve",
      "caf\xe9.txt",       // Latin-1
      "dir/\xc0\xaf/x",    // an overlong '/'
      "\xed\xa0\x80.txt",  // a UTF-16 surrogate
  }));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Has(r, ":2: invalid UTF-8 at byte offset 3")) << r.err;
  EXPECT_TRUE(Has(r, ":3: invalid UTF-8 at byte offset 4")) << r.err;
  EXPECT_TRUE(Has(r, ":4: invalid UTF-8 at byte offset 0")) << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  EXPECT_TRUE(FileRequests().empty());
}

TEST_F(Hostile, HugeLineIsRefusedNamingItWithBoundedMemory) {
  Serve("a", "a");
  // 256 MiB without a newline in the middle of the manifest: refused by
  // its number, never buffered whole nor cut into a shorter path.
  {
    std::ofstream out(work_ / "manifest", std::ios::binary | std::ios::trunc);
    out << "a\n";
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 256; ++i) out << chunk;
    out << "\nx\n";
  }
  RunResult r = GetWith((work_ / "manifest").string());
  EXPECT_EQ(r.exit_code, 2) << r.err.substr(0, 2000);
  EXPECT_TRUE(Has(r, ":2: line longer than 65536 bytes")) << r.err;
  EXPECT_LT(r.err.size(), 4096u) << "the line is not echoed";
  EXPECT_TRUE(ListTree(dest_).empty());
  // This test process runs only this test; its largest child is ferry.
  rusage usage{};
  ASSERT_EQ(::getrusage(RUSAGE_CHILDREN, &usage), 0);
  EXPECT_LT(usage.ru_maxrss, 128 * 1024) << "KiB of ferry's peak memory";
}

TEST_F(Hostile, ManifestWithoutEntriesIsRefusedBeforeAnyRequest) {
  for (const std::string& text :
       {std::string(), std::string("# only a comment\n\n   \n\r\n")}) {
    std::string manifest = RawManifest(text);
    RunResult r = GetWith(manifest);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(Has(r, "manifest " + manifest + " names no files")) << r.err;
  }
  EXPECT_TRUE(AnyRequestLines().empty());
  EXPECT_FALSE(fs::exists(dest_));
}

// The collection is asked once for a path listed twice; the second line
// is reported skipped as a duplicate of the first.
TEST_F(Hostile, DuplicateLineIsFetchedOnceWithAWarning) {
  Serve("twice", "data");
  Serve("once", "other");
  RunResult r = GetWith(Manifest({"twice", "once", "twice"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectSameTree();
  size_t gets = 0;
  for (const Request& q : FileRequests()) {
    if (q.method == "GET" && q.target == "/" + name_ + "/twice") ++gets;
  }
  EXPECT_EQ(gets, 1u);
  // The warning names both lines.
  size_t warning = r.err.find("line 3");
  ASSERT_NE(warning, std::string::npos) << r.err;
  size_t end = r.err.find('\n', warning);
  size_t begin = r.err.rfind('\n', warning);
  std::string text = r.err.substr(begin + 1, end - begin - 1);
  EXPECT_NE(text.find("line 1"), std::string::npos) << text;
  EXPECT_NE(text.find("twice"), std::string::npos) << text;
  int ok = 0;
  int skipped = 0;
  for (const Json& line : Report()) {
    if (line["path"] != "twice") continue;
    if (line["status"] == "ok") ++ok;
    if (line["status"] == "skipped") {
      ++skipped;
      EXPECT_NE(line["reason"].get<std::string>().find("duplicate"),
                std::string::npos)
          << line;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(skipped, 1);
}

TEST_F(Hostile, DestinationThatIsAFileIsRefused) {
  Serve("a", "a");
  fs::create_directories(dest_.parent_path());
  WriteFile(dest_, "precious");
  RunResult r = GetWith(Manifest({"a"}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(
      Has(r, "destination " + dest_.string() + " exists and is not a folder"))
      << r.err;
  EXPECT_EQ(ReadFile(dest_), "precious");
  EXPECT_TRUE(FileRequests().empty());
  fs::remove(dest_);
}

// Makes a folder refuse new files for as long as it lives, as root too:
// permissions for an ordinary user; for root the immutable attribute, or
// else a read-only tmpfs mounted over it.
class Unwritable {
 public:
  explicit Unwritable(const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir);
    if (::geteuid() != 0) {
      fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
      how_ = "mode 0500";
      return;
    }
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    int flags = 0;
    if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      flags |= FS_IMMUTABLE_FL;
      if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0) how_ = "immutable";
    }
    if (fd >= 0) ::close(fd);
    if (how_.empty() &&
        ::mount("ferry-test", dir.c_str(), "tmpfs", MS_RDONLY, nullptr) == 0) {
      how_ = "read-only tmpfs";
    }
  }
  ~Unwritable() {
    if (how_ == "mode 0500") {
      fs::permissions(dir_, fs::perms::owner_all);
    } else if (how_ == "immutable") {
      int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
      int flags = 0;
      if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags &= ~FS_IMMUTABLE_FL;
        ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
      }
      if (fd >= 0) ::close(fd);
    } else if (how_ == "read-only tmpfs") {
      ::umount(dir_.c_str());
    }
  }
  Unwritable(const Unwritable&) = delete;
  Unwritable& operator=(const Unwritable&) = delete;

  // How the folder was made unwritable; empty when no way worked.
  const std::string& how() const { return how_; }

 private:
  fs::path dir_;
  std::string how_;
};

TEST_F(Hostile, UnwritableDestinationIsRefusedBeforeAnyTransfer) {
  Serve("a", "a");
  Serve("b/c", "c");
  Unwritable locked(dest_);
  if (locked.how().empty()) {
    GTEST_SKIP() << "running as root, and neither the immutable attribute "
                    "nor a read-only tmpfs mount is available here, so no "
                    "folder can refuse files";
  }
  RunResult r = GetWith(Manifest({"a", "b/c"}));
  EXPECT_EQ(r.exit_code, 2) << locked.how() << "\n" << r.err;
  EXPECT_TRUE(Has(r, "cannot write into destination " + dest_.string()))
      << r.err;
  EXPECT_TRUE(ListTree(dest_).empty());
  EXPECT_TRUE(FileRequests().empty());
}

TEST_F(Hostile, SymlinkLeavingTheDestinationFailsOnlyItsFiles) {
  Serve("sub/file", "would land outside");
  Serve("sub/deeper/file", "would land outside too");
  Serve("in/kept", "through a link that stays inside");
  Serve("plain/x", "a file stands where its folder should");
  Serve("other", "unrelated");
  const fs::path elsewhere = work_ / "elsewhere";
  fs::create_directories(elsewhere);
  fs::create_directories(dest_ / "real");
  fs::create_directory_symlink(elsewhere, dest_ / "sub");
  fs::create_directory_symlink("real", dest_ / "in");
  WriteFile(dest_ / "plain", "not a folder");

  RunResult r = GetWith(
      Manifest({"sub/file", "other", "in/kept", "sub/deeper/file", "plain/x"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Has(r, "\"sub/file\": destination " +
                         (dest_ / "sub/file").string() +
                         ": runs through a symlink that leaves the "
                         "destination folder"))
      << r.err;
  EXPECT_TRUE(Has(r, "\"plain/x\": destination")) << r.err;
  EXPECT_TRUE(Has(r, "plain is not a folder")) << r.err;

  // Nothing outside; the rest arrived.
  EXPECT_TRUE(ListTree(elsewhere).empty());
  EXPECT_EQ(ReadFile(dest_ / "other"), "unrelated");
  EXPECT_EQ(ReadFile(dest_ / "real/kept"), "through a link that stays inside");
  // The harness's ListTree resolves links; these names are as on disk.
  std::vector<std::string> names;
  for (auto& e : fs::recursive_directory_iterator(dest_)) {
    names.push_back(e.path().lexically_relative(dest_).string() +
                    (e.is_symlink() ? "@" : ""));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"in@", "other", "plain", "real",
                                             "real/kept", "sub@"}));
  std::map<std::string, std::string> status;
  for (const Json& line : Report()) {
    status[line["path"].get<std::string>()] = line["status"].get<std::string>();
  }
  EXPECT_EQ(status,
            (std::map<std::string, std::string>{{"sub/file", "failed"},
                                                {"sub/deeper/file", "failed"},
                                                {"plain/x", "failed"},
                                                {"other", "ok"},
                                                {"in/kept", "ok"}}));
  // The refused files were never asked for.
  for (const Request& q : FileRequests()) {
    EXPECT_EQ(q.target.find("/sub/"), std::string::npos) << q.target;
  }
}

}  // namespace
}  // namespace ferry::testing
