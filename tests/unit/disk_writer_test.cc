// The disk writer on a real file system through a real io_uring.
#include "disk/disk_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "disk/range_file.h"
#include "unit/scratch_dir.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

class DiskWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeScratchDir("ferry-disk");
    DiskOptions options;
    options.buffer_size = 4096;  // small, so that files span many buffers
    Status s = DiskWriter::Create(options, &disk_);
    if (!s.ok())
      GTEST_SKIP() << "io_uring unavailable: " << s.error().message();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the writer until every file is done.
  void Drain() {
    while (!disk_->idle()) {
      disk_->Submit();
      disk_->Poll([this](uint64_t cookie, const Status& status) {
        done_[cookie] = status.ok() ? "ok" : status.error().message();
      });
    }
  }

  static std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::vector<std::string> Names() {
    std::vector<std::string> names;
    for (auto& e : fs::recursive_directory_iterator(dir_)) {
      names.push_back(fs::relative(e.path(), dir_).string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
  std::unique_ptr<DiskWriter> disk_;
  std::map<uint64_t, std::string> done_;
};

TEST_F(DiskWriterTest, CommittedFilesGetTheirFinalNames) {
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
  DiskWriter::FileId a, b, c;
  ASSERT_TRUE(disk_->Begin((dir_ / "x/y/small").string(), 0, 1, &a).ok());
  ASSERT_TRUE(disk_->Begin((dir_ / "x/big").string(), 0, 2, &b).ok());
  ASSERT_TRUE(disk_->Begin((dir_ / "empty").string(), 0, 3, &c).ok());
  disk_->Append(a, "hello", 5);
  // Odd-sized pieces, as the network delivers them.
  for (size_t at = 0; at < big.size(); at += 1000) {
    disk_->Append(b, big.data() + at, std::min<size_t>(1000, big.size() - at));
    disk_->Submit();
  }
  disk_->Finish(a, DiskWriter::Ending::kCommit);
  disk_->Finish(b, DiskWriter::Ending::kCommit);
  disk_->Finish(c, DiskWriter::Ending::kCommit);
  Drain();
  EXPECT_EQ(done_[1], "ok");
  EXPECT_EQ(done_[2], "ok");
  EXPECT_EQ(done_[3], "ok");
  EXPECT_EQ(Read(dir_ / "x/y/small"), "hello");
  EXPECT_EQ(Read(dir_ / "x/big"), big);
  EXPECT_EQ(Read(dir_ / "empty"), "");
  EXPECT_EQ(Names(), (std::vector<std::string>{"empty", "x", "x/big", "x/y",
                                               "x/y/small"}));
}

TEST_F(DiskWriterTest, NeverWritesThroughAStaleOrPlantedTemporaryName) {
  // A link planted where the temporary file goes must not lead the bytes
  // elsewhere; a stale temporary file is replaced.
  std::ofstream(dir_ / "victim") << "precious";
  fs::create_symlink(dir_ / "victim", dir_ / ".f.ferry-part");
  std::ofstream(dir_ / ".g.ferry-part") << "stale bytes from an old run";
  DiskWriter::FileId f, g;
  ASSERT_TRUE(disk_->Begin((dir_ / "f").string(), 0, 1, &f).ok());
  ASSERT_TRUE(disk_->Begin((dir_ / "g").string(), 0, 2, &g).ok());
  disk_->Append(f, "new f", 5);
  disk_->Append(g, "new g", 5);
  disk_->Finish(f, DiskWriter::Ending::kCommit);
  disk_->Finish(g, DiskWriter::Ending::kCommit);
  Drain();
  EXPECT_EQ(done_[1], "ok");
  EXPECT_EQ(done_[2], "ok");
  EXPECT_EQ(Read(dir_ / "victim"), "precious");
  EXPECT_FALSE(fs::is_symlink(dir_ / "f"));
  EXPECT_EQ(Read(dir_ / "f"), "new f");
  EXPECT_EQ(Read(dir_ / "g"), "new g");
  EXPECT_EQ(Names(), (std::vector<std::string>{"f", "g", "victim"}));
}

TEST_F(DiskWriterTest, NamesUpToTheFileSystemLimitWork) {
  std::string name(255, 'n');
  DiskWriter::FileId id;
  ASSERT_TRUE(disk_->Begin((dir_ / name).string(), 0, 4, &id).ok());
  disk_->Append(id, "long", 4);
  disk_->Finish(id, DiskWriter::Ending::kCommit);
  Drain();
  EXPECT_EQ(done_[4], "ok");
  EXPECT_EQ(Read(dir_ / name), "long");
  EXPECT_EQ(Names(), std::vector<std::string>{name});
}

TEST_F(DiskWriterTest, AbandonedFilesLeaveNothing) {
  DiskWriter::FileId a, b;
  ASSERT_TRUE(disk_->Begin((dir_ / "a").string(), 0, 1, &a).ok());
  ASSERT_TRUE(disk_->Begin((dir_ / "b").string(), 0, 2, &b).ok());
  std::string data(20000, 'z');  // spans buffers: the file gets opened
  disk_->Append(a, data.data(), data.size());
  disk_->Append(b, "x", 1);
  disk_->Submit();
  disk_->Finish(a, DiskWriter::Ending::kAbandon);
  disk_->Finish(b, DiskWriter::Ending::kAbandon);
  Drain();
  EXPECT_EQ(done_[1], "ok");
  EXPECT_EQ(done_[2], "ok");
  EXPECT_TRUE(Names().empty());
}

TEST_F(DiskWriterTest, ReplacesAnExistingFileAtomically) {
  std::ofstream(dir_ / "f") << "old contents, longer";
  DiskWriter::FileId id;
  ASSERT_TRUE(disk_->Begin((dir_ / "f").string(), 0, 7, &id).ok());
  disk_->Append(id, "new", 3);
  disk_->Finish(id, DiskWriter::Ending::kCommit);
  Drain();
  EXPECT_EQ(Read(dir_ / "f"), "new");
  EXPECT_EQ(Names(), std::vector<std::string>{"f"});
}

TEST_F(DiskWriterTest, AKeptFileIsContinuedFromItsLength) {
  DiskWriter::FileId id;
  ASSERT_TRUE(disk_->Begin((dir_ / "f").string(), 0, 1, &id).ok());
  disk_->Append(id, "hello ", 6);
  disk_->Finish(id, DiskWriter::Ending::kKeep);
  Drain();
  EXPECT_EQ(done_[1], "ok");
  EXPECT_EQ(Names(), std::vector<std::string>{".f.ferry-part"});
  // Bytes past the kept length (a write that never completed) go.
  std::ofstream(dir_ / ".f.ferry-part", std::ios::app) << "garbage";
  ASSERT_TRUE(disk_->Begin((dir_ / "f").string(), 6, 2, &id).ok());
  disk_->Append(id, "world", 5);
  disk_->Finish(id, DiskWriter::Ending::kCommit);
  Drain();
  EXPECT_EQ(done_[2], "ok");
  EXPECT_EQ(Read(dir_ / "f"), "hello world");
  EXPECT_EQ(Names(), std::vector<std::string>{"f"});
}

TEST_F(DiskWriterTest, WrittenLengthFollowsCompletedWrites) {
  DiskWriter::FileId id;
  ASSERT_TRUE(disk_->Begin((dir_ / "f").string(), 0, 1, &id).ok());
  std::string chunk(DiskOptions().buffer_size, 'x');
  disk_->Append(id, chunk.data(), chunk.size());
  disk_->Append(id, "tail", 4);
  // The full buffer may be in flight; the tail is not written yet.
  EXPECT_LE(disk_->written(id), chunk.size());
  while (disk_->written(id) < chunk.size()) {
    disk_->Submit();
    disk_->Poll([](uint64_t, const Status&) {});
  }
  EXPECT_EQ(disk_->written(id), chunk.size());
  disk_->Finish(id, DiskWriter::Ending::kAbandon);
  Drain();
  EXPECT_TRUE(Names().empty());
}

TEST_F(DiskWriterTest, AContinuedFileThatVanishedIsAnError) {
  DiskWriter::FileId id;
  Status s = disk_->Begin((dir_ / "gone").string(), 10, 1, &id);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot continue"), std::string::npos);
}

TEST_F(DiskWriterTest, ReportsAFolderThatCannotBeMade) {
  std::ofstream(dir_ / "file") << "a file where a folder should be";
  DiskWriter::FileId id;
  Status s = disk_->Begin((dir_ / "file/sub/x").string(), 0, 1, &id);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot create directory"),
            std::string::npos);
}

TEST_F(DiskWriterTest, ReportsAFileThatCannotBeCreated) {
  // The final name is an existing folder: the rename must fail, and the
  // temporary file must be removed.
  fs::create_directories(dir_ / "taken/inner");
  DiskWriter::FileId id;
  ASSERT_TRUE(disk_->Begin((dir_ / "taken").string(), 0, 5, &id).ok());
  disk_->Append(id, "data", 4);
  disk_->Finish(id, DiskWriter::Ending::kCommit);
  Drain();
  EXPECT_NE(done_[5].find("cannot rename"), std::string::npos) << done_[5];
  EXPECT_EQ(Names(), (std::vector<std::string>{"taken", "taken/inner"}));
}

// Ranges of one file written by two writers at once, one of them
// abandoned: the file stays for the split's owner, with the kept range's
// bytes at their offsets, and with O_DIRECT the padded tail is cut back.
TEST_F(DiskWriterTest, RangesShareOneFileThatOnlyItsOwnerRemoves) {
  const std::string final_path = (dir_ / "sub/split").string();
  const uint64_t size = 3 * 4096 + 100;
  ASSERT_TRUE(CreateRangeFile(final_path, size).ok());
  std::string first(2 * 4096, 'a');
  std::string second(4096 + 100, 'b');
  for (bool direct : {false, true}) {
    DiskWriter::FileId a, b;
    ASSERT_TRUE(disk_->BeginRange(final_path, 0, direct, 1, &a).ok());
    ASSERT_TRUE(
        disk_->BeginRange(final_path, first.size(), direct, 2, &b).ok());
    disk_->Append(a, first.data(), first.size());
    disk_->Append(b, second.data(), second.size());
    disk_->Finish(a, DiskWriter::Ending::kAbandon);
    disk_->Finish(b, DiskWriter::Ending::kKeep);
    Drain();
    EXPECT_EQ(done_[1], "ok");
    EXPECT_EQ(done_[2], "ok");
    const fs::path part = PartPathFor(final_path);
    ASSERT_TRUE(fs::exists(part)) << direct;
    ASSERT_TRUE(TrimRangeFile(final_path, size).ok());
    std::string bytes = Read(part);
    ASSERT_EQ(bytes.size(), size) << direct;
    EXPECT_EQ(bytes.substr(first.size()), second) << direct;
  }
  ASSERT_TRUE(CommitRangeFile(final_path).ok());
  EXPECT_EQ(Names(), (std::vector<std::string>{"sub", "sub/split"}));
}

}  // namespace
}  // namespace ferry
