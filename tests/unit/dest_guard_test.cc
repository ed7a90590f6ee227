#include "plan/dest_guard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "unit/scratch_dir.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

class DestinationGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = testing::MakeScratchDir("ferry-guard");
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_);
    fs::create_directories(outside_);
  }
  void TearDown() override { fs::remove_all(base_); }

  // The path the planner hands over for a manifest path `rel`.
  std::string Final(const std::string& rel) const {
    return root_.string() + "/" + rel;
  }
  static std::string Why(const Status& s) {
    return s.ok() ? "" : s.error().message();
  }

  fs::path base_;
  fs::path root_;
  fs::path outside_;
};

TEST_F(DestinationGuardTest, PlainAndMissingFoldersPass) {
  fs::create_directories(root_ / "a/b");
  DestinationGuard guard(root_.string());
  EXPECT_TRUE(guard.Check(Final("top")).ok());
  EXPECT_TRUE(guard.Check(Final("a/b/file")).ok());
  EXPECT_TRUE(guard.Check(Final("a/b/not/yet/made/file")).ok());
  EXPECT_TRUE(guard.Check(Final("new/file")).ok());
}

TEST_F(DestinationGuardTest, LinkThatLeavesTheRootIsRefused) {
  fs::create_directory_symlink(outside_, root_ / "sub");
  DestinationGuard guard(root_.string());
  Status s = guard.Check(Final("sub/file"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kLocalIo);
  EXPECT_EQ(s.error().retry_class(), RetryClass::kPermanent);
  EXPECT_NE(Why(s).find("runs through a symlink that leaves the destination "
                        "folder"),
            std::string::npos)
      << Why(s);
  EXPECT_NE(Why(s).find(Final("sub/file")), std::string::npos) << Why(s);
  // Deeper paths through the same link, whether they exist or not.
  EXPECT_FALSE(guard.Check(Final("sub/deeper/file")).ok());
  // The link's own name is the file: the writer renames over the link.
  EXPECT_TRUE(guard.Check(Final("sub")).ok());
}

TEST_F(DestinationGuardTest, LinkThatStaysInsideIsFine) {
  fs::create_directories(root_ / "real/inner");
  fs::create_directory_symlink("real", root_ / "alias");
  fs::create_directory_symlink(root_ / "real/inner", root_ / "deep-alias");
  DestinationGuard guard(root_.string());
  EXPECT_TRUE(guard.Check(Final("alias/file")).ok());
  EXPECT_TRUE(guard.Check(Final("alias/inner/file")).ok());
  EXPECT_TRUE(guard.Check(Final("deep-alias/file")).ok());
}

TEST_F(DestinationGuardTest, LinkBehindAnInsideLinkIsFollowedToo) {
  fs::create_directories(root_ / "real");
  fs::create_directory_symlink("real", root_ / "alias");
  fs::create_directory_symlink(outside_, root_ / "real/escape");
  DestinationGuard guard(root_.string());
  EXPECT_FALSE(guard.Check(Final("alias/escape/file")).ok());
  EXPECT_FALSE(guard.Check(Final("real/escape/file")).ok());
}

TEST_F(DestinationGuardTest, LinkUpAndBackOutIsRefused) {
  // "../outside" through a relative link, and a link to the root's parent.
  fs::create_directory_symlink("../outside", root_ / "rel");
  fs::create_directory_symlink("..", root_ / "up");
  DestinationGuard guard(root_.string());
  EXPECT_FALSE(guard.Check(Final("rel/file")).ok());
  EXPECT_FALSE(guard.Check(Final("up/root/file")).ok());
}

TEST_F(DestinationGuardTest, FileInThePlaceOfAFolderIsRefused) {
  std::ofstream(root_ / "plain") << "x";
  fs::create_directories(root_ / "real");
  std::ofstream(root_ / "real/f") << "x";
  fs::create_symlink(root_ / "real/f", root_ / "to-file");
  DestinationGuard guard(root_.string());
  Status s = guard.Check(Final("plain/file"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Why(s).find("plain is not a folder"), std::string::npos) << Why(s);
  s = guard.Check(Final("to-file/file"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Why(s).find("not to a folder"), std::string::npos) << Why(s);
}

TEST_F(DestinationGuardTest, DanglingLinkIsRefused) {
  fs::create_directory_symlink(base_ / "nowhere", root_ / "broken");
  DestinationGuard guard(root_.string());
  Status s = guard.Check(Final("broken/file"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Why(s).find("leads nowhere"), std::string::npos) << Why(s);
}

TEST_F(DestinationGuardTest, RootReachedThroughALinkIsItsRealFolder) {
  fs::create_directory_symlink(root_, base_ / "root-link");
  fs::create_directories(root_ / "real");
  fs::create_directory_symlink(root_ / "real", root_ / "alias");
  DestinationGuard guard((base_ / "root-link").string());
  const std::string root = (base_ / "root-link").string();
  EXPECT_TRUE(guard.Check(root + "/alias/file").ok());
  EXPECT_TRUE(guard.Check(root + "/real/file").ok());
}

TEST_F(DestinationGuardTest, PathNotBelowTheRootIsRefused) {
  DestinationGuard guard(root_.string());
  EXPECT_FALSE(guard.Check(outside_.string() + "/file").ok());
  EXPECT_FALSE(guard.Check(root_.string() + "x/file").ok());
  EXPECT_FALSE(guard.Check(root_.string()).ok());
}

TEST_F(DestinationGuardTest, MissingRootIsRefused) {
  DestinationGuard guard((base_ / "absent").string());
  Status s = guard.Check((base_ / "absent/file").string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Why(s).find("cannot resolve the destination folder"),
            std::string::npos)
      << Why(s);
}

TEST_F(DestinationGuardTest, KeepsEachFoldersResult) {
  // The first answer about a folder stands: a million files in it cost one
  // look. (So a link made after the check is not seen; see the header.)
  fs::create_directories(root_ / "d");
  DestinationGuard guard(root_.string());
  ASSERT_TRUE(guard.Check(Final("d/1")).ok());
  fs::remove(root_ / "d");
  fs::create_directory_symlink(outside_, root_ / "d");
  EXPECT_TRUE(guard.Check(Final("d/2")).ok());
  // A folder not seen before is looked at.
  fs::create_directory_symlink(outside_, root_ / "e");
  EXPECT_FALSE(guard.Check(Final("e/1")).ok());
}

}  // namespace
}  // namespace ferry
