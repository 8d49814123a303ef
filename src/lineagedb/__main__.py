from lineagedb.cli import main

raise SystemExit(main())
