"""Building blocks of Faster and Mask R-CNN."""
