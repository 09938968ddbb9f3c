// Merged into @jupyterlab/builder's config. Module ids by relative name instead of a hash of each
// module's identifier: the container entry's identifier holds absolute paths, so hashed ids made the
// build depend on where the checkout lies, and CI compares its build with the committed one.
module.exports = {
  optimization: {
    moduleIds: 'named'
  }
};
