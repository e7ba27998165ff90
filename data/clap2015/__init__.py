"""ChaLearn LAP 2015 apparent age (CLAP2015): mean and std of the apparent age per image."""
